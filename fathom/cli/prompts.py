"""``fathom prompts`` and ``fathom datasets``: the upstream texts and evaluation sets, fetched at a
pinned commit, checked against pinned sha256 digests and kept in the user data dir.

The downloader is :mod:`fathom.app.upstream`, imported inside each command: ``fathom --help``
stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fathom.cli.options import EXIT_USAGE, fail, load_settings, stderr
from fathom.errors import ConfigError

prompts_app = typer.Typer(
    help="Fetch, list and show the upstream prompts the models were trained on (used by --prompt trained).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
datasets_app = typer.Typer(
    help="Fetch and list the upstream evaluation sets (JSONL with question and answer).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

BaseUrl = Annotated[
    Optional[str],
    typer.Option(
        "--url",
        help="Base URL of the raw upstream files; <commit>/<path> is appended "
        "[env FATHOM_PROMPTS_URL; default https://raw.githubusercontent.com/FractalAIResearchLabs/Fathom-DeepResearch]",
    ),
]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings [default none]")]


def _base_url(url: str | None, config: Path | None) -> str:
    return load_settings({"prompts_base_url": url}, config).prompts_base_url


def _note(text: str) -> None:
    stderr().print(text, markup=False, highlight=False)


@prompts_app.command("fetch")
def prompts_fetch(url: BaseUrl = None, config: ConfigFile = None) -> None:
    """Download the upstream prompts at the pinned commit, check their sha256 and install them.

    The files are parsed, never run; a text whose digest differs is refused and nothing is kept.
    """
    from fathom.app import upstream

    base = _base_url(url, config)
    installed = upstream.fetch_prompts(base)
    for item in installed:
        _note(f"installed {item.name}  sha256 {item.sha256}")
    sys.stdout.write(f"{len(installed)} prompts of upstream commit {upstream.UPSTREAM_COMMIT} in {upstream.prompts_dir()}\n")


@prompts_app.command("list")
def prompts_list() -> None:
    """The upstream prompts: installed or missing (or changed since), their file and sha256."""
    from fathom.app import upstream

    rows = upstream.installed_prompts()
    sys.stdout.write(f"upstream commit {upstream.UPSTREAM_COMMIT}: {upstream.prompts_dir()}\n")
    width = max(len(item.name) for item in rows)
    for item in rows:
        spec = upstream.PROMPTS[item.name]
        sys.stdout.write(
            f"{item.name:<{width}}  {item.state:<7}  {item.sha256 or spec.sha256}  {spec.path}:{spec.constant}\n"
        )
    if not any(item.sha256 for item in rows):
        _note("no prompt is installed: run 'fathom prompts fetch'")


@prompts_app.command("show")
def prompts_show(name: Annotated[str, typer.Argument(help="A prompt name from 'fathom prompts list'.")]) -> None:
    """Print an installed prompt exactly as stored (its path and sha256 go to stderr)."""
    from fathom.app import upstream

    text = upstream.read_prompt(name)
    if text is None:
        fail(f"prompt {name} is not installed: run 'fathom prompts fetch'", EXIT_USAGE)
    _note(f"{upstream.prompts_dir() / (name + '.txt')}  sha256 {upstream.PROMPTS[name].sha256}")
    sys.stdout.write(text)
    sys.stdout.flush()


@datasets_app.command("fetch")
def datasets_fetch(
    names: Annotated[Optional[list[str]], typer.Argument(help="Data set names (see 'fathom datasets list').")] = None,
    fetch_all: Annotated[bool, typer.Option("--all", help="Fetch every data set")] = False,
    url: BaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Download evaluation sets at the pinned commit, check their sha256 and rows, install them."""
    from fathom.app import upstream

    chosen = list(upstream.DATASETS) if fetch_all else list(names or [])
    if not chosen:
        raise ConfigError(f"name a data set or pass --all: {', '.join(upstream.DATASETS)}")
    for name in chosen:
        if name not in upstream.DATASETS:
            raise ConfigError(f"unknown data set {name!r}: the data sets are {', '.join(upstream.DATASETS)}")
    base = _base_url(url, config)
    for name in chosen:
        item = upstream.fetch_dataset(name, base)
        sys.stdout.write(f"{item.name}: {item.rows} rows, sha256 {item.sha256}, {item.path}\n")


@datasets_app.command("list")
def datasets_list() -> None:
    """The upstream evaluation sets: installed or missing (or changed since), rows and sha256."""
    from fathom.app import upstream

    rows = upstream.installed_datasets()
    sys.stdout.write(f"upstream commit {upstream.UPSTREAM_COMMIT}: {upstream.datasets_dir()}\n")
    width = max(len(item.name) for item in rows)
    for item in rows:
        spec = upstream.DATASETS[item.name]
        count = f"{item.rows} rows" if item.rows is not None else "-"
        sys.stdout.write(
            f"{item.name:<{width}}  {item.state:<7}  {count:>10}  {item.sha256 or spec.sha256}  {spec.path}\n"
        )

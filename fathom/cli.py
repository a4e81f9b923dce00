"""The ``fathom`` command line: research a question, with live progress on stderr."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console

from fathom.models.base import ModelError
from fathom.progress import ProgressPrinter
from fathom.runner import new_run_id, run_question
from fathom.settings import Settings, SettingsError

app = typer.Typer(
    name="fathom",
    help="Durable deep research with small models (Fathom-Search-4B on SGLang).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_NO_ANSWER = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_INTERRUPTED = 130


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    sys.stderr.write(f"fathom: error: {' '.join(message.split())}\n")
    raise typer.Exit(code)


# Flags shared by every command that runs the graph. Defaults are None so env vars and the
# config file apply unless a flag is given.
SearchModelUrl = Annotated[Optional[str], typer.Option("--search-model-url", help="SGLang server of the search model [env FATHOM_SEARCH_MODEL_URL; default http://127.0.0.1:8902]")]
SynthModelUrl = Annotated[Optional[str], typer.Option("--synth-model-url", help="SGLang server of the synthesizer [env FATHOM_SYNTH_MODEL_URL; default http://127.0.0.1:8903]")]
QueryLlm = Annotated[Optional[str], typer.Option("--query-llm", help="Page-evidence LLM: none, openai:MODEL or http://host:port/v1 [env FATHOM_QUERY_LLM; default none]")]
SearchBackend = Annotated[Optional[str], typer.Option("--search-backend", help="tavily, serper, searxng, ddg or local [env FATHOM_SEARCH_BACKEND; default: by the keys set]")]
SearchProtocolOpt = Annotated[Optional[str], typer.Option("--search-protocol", help="fathom (raw ChatML /generate) or chat (OpenAI tool calling on /v1) [env FATHOM_SEARCH_PROTOCOL]")]
SearxngUrl = Annotated[Optional[str], typer.Option("--searxng-url", help="SearXNG base URL [env SEARXNG_URL]")]
SerperUrl = Annotated[Optional[str], typer.Option("--serper-url", help="Serper base URL [env SERPER_BASE_URL]")]
AllowHost = Annotated[Optional[list[str]], typer.Option("--allow-host", help="host[:port] that page reads may reach although it is private or loopback (repeatable) [env FATHOM_ALLOW_HOSTS]")]
MaxRounds = Annotated[Optional[int], typer.Option("--max-rounds", help="Model turns before a final answer is forced [env FATHOM_MAX_ROUNDS; default 64]")]
MaxCalls = Annotated[Optional[int], typer.Option("--max-calls-per-turn", help="Tool calls run per turn [default 8]")]
MaxWall = Annotated[Optional[float], typer.Option("--max-wall-seconds", help="Wall-clock budget of one invocation [default 3600]")]
PromptFile = Annotated[Optional[Path], typer.Option("--prompt-file", help="Search system prompt file, used byte for byte; {func_schemas} is replaced [env FATHOM_PROMPT_FILE]")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings (a [fathom] table or top-level keys)")]


@app.callback()
def root() -> None:
    """Durable deep research with small models (Fathom-Search-4B on SGLang)."""


def load_settings(config_file: Path | None, **flags: Any) -> Settings:
    try:
        return Settings.load(flags, config_file=config_file)
    except SettingsError as exc:
        fail(str(exc), EXIT_USAGE)


@app.command()
def research(
    question: Annotated[str, typer.Argument(help="The question to research.")],
    search_model_url: SearchModelUrl = None,
    synth_model_url: SynthModelUrl = None,
    query_llm: QueryLlm = None,
    search_backend: SearchBackend = None,
    search_protocol: SearchProtocolOpt = None,
    searxng_url: SearxngUrl = None,
    serper_url: SerperUrl = None,
    allow_host: AllowHost = None,
    max_rounds: MaxRounds = None,
    max_calls_per_turn: MaxCalls = None,
    max_wall_seconds: MaxWall = None,
    prompt_file: PromptFile = None,
    config: ConfigFile = None,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Id of the run (default: a new one)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the answer")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output")] = False,
) -> None:
    """Research QUESTION with the search model and print the answer."""
    if not question.strip():
        fail("the question is empty", EXIT_USAGE)
    settings = load_settings(
        config,
        search_model_url=search_model_url,
        synth_model_url=synth_model_url,
        query_llm=query_llm,
        search_backend=search_backend,
        search_protocol=search_protocol,
        searxng_url=searxng_url,
        serper_url=serper_url,
        allow_hosts=tuple(allow_host) if allow_host else None,
        max_rounds=max_rounds,
        max_calls_per_turn=max_calls_per_turn,
        max_wall_seconds=max_wall_seconds,
        prompt_file=prompt_file,
    )
    if prompt_file is not None and not prompt_file.is_file():
        fail(f"--prompt-file {prompt_file} does not exist", EXIT_USAGE)
    run_id = run_id or new_run_id()
    if quiet:
        logging.getLogger("fathom").setLevel(logging.ERROR)
    progress = ProgressPrinter(stderr, enabled=not quiet)
    progress.start(run_id, question, settings)
    try:
        summary = asyncio.run(
            run_question(question.strip(), settings, run_id=run_id, on_event=progress.handle)
        )
    except KeyboardInterrupt:
        fail(f"interrupted; run {run_id} stopped", EXIT_INTERRUPTED)
    except ModelError as exc:
        fail(str(exc), EXIT_MODEL)
    except (ValueError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)
    progress.finish(summary)
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    elif summary["answer"]:
        sys.stdout.write(summary["answer"] + "\n")
    if summary["status"] != "answered":
        fail(summary.get("error") or "the run ended without an answer", EXIT_NO_ANSWER)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()

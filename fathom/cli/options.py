"""What ``fathom`` commands share: exit codes, one-line errors, the options of a run, the database.

Only typer and the standard library are imported at module level: ``fathom --help`` stays fast.
Commands import rich, the store and the graph when they run.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional, get_type_hints

import typer

from fathom.aio import run_own_loop
from fathom.errors import ConfigError, FathomError, ModelError, StoreError

if TYPE_CHECKING:
    from rich.console import Console

    from fathom.settings import Settings

EXIT_NO_ANSWER = 1  # the run ended without an answer (or its report failed)
EXIT_USAGE = 2  # a bad flag, setting or file, an unknown run, a refused tool call
EXIT_MODEL = 3  # a model server failed
EXIT_STORE = 4  # the run database cannot be used
EXIT_REVIEW = 5  # the run waits for its plan to be reviewed
EXIT_BUG = 70  # an unexpected error: a bug (the traceback is in a log file)
EXIT_INTERRUPTED = 130


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    sys.stderr.write(f"fathom: error: {' '.join(message.split())}\n")
    raise typer.Exit(code)


def write_output(text: str, out: Path | None) -> bool:
    """``text`` to the file ``out``, or to stdout when there is none; True when a file was written.

    Raises:
        ConfigError: ``out`` cannot be written.
    """
    if out is None:
        sys.stdout.write(text)
        return False
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {out} cannot be written: {exc.strerror or exc}") from None
    return True


def exit_code_of(error: FathomError) -> int:
    """The exit code of an expected failure."""
    if isinstance(error, ModelError):
        return EXIT_MODEL
    if isinstance(error, StoreError):
        return EXIT_STORE
    return EXIT_USAGE  # ConfigError, RunError (an unknown run), ToolError


def exit_code_of_status(status: str) -> int:
    """The exit code of a run that stopped with ``status`` (see ``fathom.store.RUN_STATUSES``)."""
    return {"answered": 0, "waiting": EXIT_REVIEW, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_NO_ANSWER)


def report_bug(error: BaseException) -> NoReturn:
    """An unexpected exception: its traceback goes to a log file, the user reads one line."""
    log = _crash_log_path()
    log.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
    summary = " ".join(str(error).split())[:200]
    sys.stderr.write(
        f"fathom: error: unexpected {type(error).__name__}{': ' + summary if summary else ''} "
        f"(this is a bug; the traceback is in {log})\n"
    )
    raise SystemExit(EXIT_BUG)


def _crash_log_path() -> Path:
    import tempfile

    import platformdirs

    name = f"crash-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
    for folder in (platformdirs.user_log_path("fathom"), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.touch()
            return path
        except OSError:
            continue
    return Path(tempfile.mkstemp(prefix="fathom-crash-", suffix=".log")[1])


@functools.cache
def stderr() -> Console:
    """The console of progress lines and notes."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


# ---- the run database -------------------------------------------------------------------------

DbUrl = Annotated[
    Optional[str],
    typer.Option(
        "--db",
        help="Run database: sqlite:///PATH, postgresql://…, mysql://… "
        "[env FATHOM_DB_URL; default a SQLite file in the user data dir]",
    ),
]


def load_settings(flags: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Defaults, then ``config_file``, then the environment, then ``flags`` (None: not given).

    Raises:
        ConfigError: a bad value, or a config file that cannot be read (a directory, say).
    """
    from fathom.settings import Settings

    try:
        return Settings.load(flags, config_file=config_file)
    except OSError as exc:
        raise ConfigError(f"config file {config_file} cannot be read: {exc.strerror or exc}") from None


def db_url_of(flag: str | None, config_file: Path | None = None) -> str | None:
    """The database: --db, else the config file's or FATHOM_DB_URL (the settings read both), else
    None (the default file)."""
    return load_settings({"db_url": flag}, config_file).db_url


def with_store(work: Callable[[Any], Any]) -> Callable[[str | None], Any]:
    """Open the run database named by --db, run ``work(store)`` and return its result.

    Store errors and unknown runs propagate: :func:`fathom.cli.main.main` makes them one line.
    """

    def call(db: str | None) -> Any:

        from fathom.store import open_store

        async def go(url: str | None) -> Any:
            async with open_store(url) as store:
                return await work(store)

        return run_own_loop(go(db_url_of(db)))

    return call


# ---- the options of a run: one set, shared by `research` and `resume` --------------------------


@dataclass(frozen=True)
class RunOptions:
    """Every option that configures a run or its output. ``research`` and ``resume`` both take
    all of them (see :func:`run_options`), so the two commands cannot drift apart.

    Defaults are None (or False) so that the config file and the environment apply unless a flag
    is given; the ``[env …; default …]`` notes say what applies then.
    """

    search_model_url: Annotated[Optional[str], typer.Option("--search-model-url", help="SGLang server of the search model, or local:MODEL to run it in-process (see --local) [env FATHOM_SEARCH_MODEL_URL; default http://127.0.0.1:8902]")] = None
    synth_model_url: Annotated[Optional[str], typer.Option("--synth-model-url", help="SGLang server of the synthesizer, or local:MODEL [env FATHOM_SYNTH_MODEL_URL; default http://127.0.0.1:8903]")] = None
    local: Annotated[bool, typer.Option("--local", help="Run the default models in-process with transformers, no server: search local:FractalAIResearch/Fathom-Search-4B, synthesizer local:FractalAIResearch/Fathom-Synthesizer-4B (GPU when torch sees one, else CPU; needs the 'local' extra; weights from the Hugging Face cache). --search-model-url/--synth-model-url still win [default: off]")] = False
    query_llm: Annotated[Optional[str], typer.Option("--query-llm", help="Page-evidence LLM: none, openai:MODEL or http://host:port/v1 [env FATHOM_QUERY_LLM; default none]")] = None
    search_backend: Annotated[Optional[str], typer.Option("--search-backend", help="tavily, serper, searxng, ddg, local or mcp [env FATHOM_SEARCH_BACKEND; default the first of tavily, serper, searxng whose key or URL is set, else ddg]")] = None
    search_protocol: Annotated[Optional[str], typer.Option("--search-protocol", help="fathom (raw ChatML /generate), chat (OpenAI tool calling on /v1), or a baseline of the paper: legacy (II-Search-4B, Jan-Nano), r1-searcher, zerosearch, search-o1 [env FATHOM_SEARCH_PROTOCOL; default fathom]")] = None
    searxng_url: Annotated[Optional[str], typer.Option("--searxng-url", help="SearXNG base URL [env SEARXNG_URL; default none]")] = None
    serper_url: Annotated[Optional[str], typer.Option("--serper-url", help="Serper base URL [env SERPER_BASE_URL; default https://google.serper.dev]")] = None
    mcp_server: Annotated[Optional[str], typer.Option("--mcp-server", metavar="CMD_OR_URL", help="With --search-backend mcp: the MCP server with the search tool, a command line (run as a subprocess over stdio) or an http(s) URL (streamable HTTP) [env FATHOM_MCP_SERVER; default none]")] = None
    mcp_tool: Annotated[Optional[str], typer.Option("--mcp-tool", metavar="NAME", help="With --search-backend mcp: the server's search tool [env FATHOM_MCP_TOOL; default its only tool, or its only tool named *search*]")] = None
    allow_host: Annotated[Optional[list[str]], typer.Option("--allow-host", help="host[:port] that page reads may reach although it is private or loopback (repeatable) [env FATHOM_ALLOW_HOSTS, comma-separated; default none]")] = None
    reader: Annotated[Optional[str], typer.Option("--reader", metavar="auto|static|jina", help="How query_url reads pages: auto (site readers for GitHub, Reddit, YouTube, arXiv and Wikipedia, then the page itself, a headless browser for JavaScript pages when the 'browser' extra and Chromium are installed, archive.org for pages that refuse us), static (no browser) or jina (Jina's reader first; JINA_API_KEY goes to it) [env FATHOM_READER; default auto]")] = None
    max_rounds: Annotated[Optional[int], typer.Option("--max-rounds", help="Model turns before a final answer is forced [env FATHOM_MAX_ROUNDS; default 64]")] = None
    max_calls_per_turn: Annotated[Optional[int], typer.Option("--max-calls-per-turn", help="Tool calls run per turn [env FATHOM_MAX_CALLS_PER_TURN; default 8]")] = None
    max_wall_seconds: Annotated[Optional[float], typer.Option("--max-wall-seconds", help="Wall-clock budget of one invocation [env FATHOM_MAX_WALL_SECONDS; default 3600]")] = None
    context_strategy: Annotated[Optional[str], typer.Option("--context-strategy", metavar="fold|answer", help="Near the search model's context limit: fold older tool results into digests and research on, or answer with what the run has [env FATHOM_CONTEXT_STRATEGY; default fold]")] = None
    prompt: Annotated[Optional[str], typer.Option("--prompt", "--prompt-file", metavar="trained|builtin|FILE", help="Search system prompt: trained (the upstream text, byte-exact; see 'fathom prompts fetch'), builtin, or a file used byte for byte with {func_schemas} replaced (--prompt-file is an old name) [env FATHOM_PROMPT; default trained once fetched, else builtin]")] = None
    synth_prompt: Annotated[Optional[str], typer.Option("--synth-prompt", "--synth-prompt-file", metavar="trained|builtin|FILE", help="Synthesizer system prompt: trained, builtin or a file used byte for byte (--synth-prompt-file is an old name) [env FATHOM_SYNTH_PROMPT; default trained once fetched, else builtin]")] = None
    language: Annotated[Optional[str], typer.Option("--language", help="Language of the report [env FATHOM_LANGUAGE; default English]")] = None
    verify: Annotated[Optional[str], typer.Option("--verify", metavar="off|on|strict", help="Check the answer: on (supported at no cost when it appears in a page read, else a judge model decides), strict (the judge always decides) or off [env FATHOM_VERIFY; default on]")] = None
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Accept the model's answer without checking it (--verify off) [env FATHOM_VERIFY=false; default: answers are checked]")] = False
    prefetch_pages: Annotated[Optional[int], typer.Option("--prefetch", metavar="N", help="Pages of each search's top results read ahead while the model writes its next turn, so the pages it then asks for are read already (0: none) [env FATHOM_PREFETCH_PAGES; default 3; FATHOM_PREFETCH_MAX_BYTES caps the text held, default 8000000]")] = None
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither reuse nor store cached searches, pages and evidence [env FATHOM_NO_CACHE; default: the cache is used]")] = False
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings (a [fathom] table or top-level keys); env vars and flags override it [default none]")] = None
    db: DbUrl = None
    plan_action: Annotated[Optional[str], typer.Option("--plan-action", help="Answer the plan review without asking: accept or abort [default: ask, or read stdin]")] = None
    plan_file: Annotated[Optional[Path], typer.Option("--plan-file", help="Answer the plan review with this edited plan [default none]")] = None
    out: Annotated[Optional[Path], typer.Option("--out", help="Report file [default <run_id>.md or .html here]")] = None
    report_format: Annotated[str, typer.Option("--format", help="Report format: md or html")] = "md"
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the answer")] = False
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output")] = False

    def settings_flags(self) -> dict[str, Any]:
        """The flags as ``Settings`` overrides (None: not given, so the run's own value stands)."""
        local_search, local_synth = _local_models() if self.local else (None, None)
        return {
            "search_model_url": self.search_model_url or local_search,
            "synth_model_url": self.synth_model_url or local_synth,
            "query_llm": self.query_llm,
            "search_backend": self.search_backend,
            "search_protocol": self.search_protocol,
            "searxng_url": self.searxng_url,
            "serper_url": self.serper_url,
            "mcp_server": self.mcp_server,
            "mcp_tool": self.mcp_tool,
            "allow_hosts": tuple(self.allow_host) if self.allow_host else None,
            "reader": self.reader,
            "max_rounds": self.max_rounds,
            "max_calls_per_turn": self.max_calls_per_turn,
            "max_wall_seconds": self.max_wall_seconds,
            "context_strategy": self.context_strategy,
            "prompt": self.prompt,
            "synth_prompt": self.synth_prompt,
            "language": self.language,
            "verify": "off" if self.no_verify else self.verify,
            "no_cache": True if self.no_cache else None,
            "prefetch_pages": self.prefetch_pages,
            "db_url": self.db,
        }

    def check(self) -> None:
        """Refuse files that do not exist and unknown report formats.

        Raises:
            ConfigError: naming the flag.
        """
        prompts = [(flag, Path(value)) for flag, value in (("--prompt", self.prompt), ("--synth-prompt", self.synth_prompt))
                   if value is not None and value.strip() not in ("trained", "builtin")]
        for flag, path in (*prompts, ("--plan-file", self.plan_file)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag} {path} does not exist")
        if self.report_format not in ("md", "html"):
            raise ConfigError("--format must be md or html")

    def load_settings(self) -> Settings:
        """Defaults, then --config, then the environment, then the flags (see :func:`load_settings`)."""
        return load_settings(self.settings_flags(), self.config)

    def db_url(self) -> str | None:
        """The run database, as :meth:`load_settings` would name it."""
        return db_url_of(self.db, self.config)


def _local_models() -> tuple[str, str]:
    """The ``local:`` specs of the default search and synthesizer models (``--local``)."""
    from fathom.models.local import DEFAULT_SEARCH_MODEL, DEFAULT_SYNTH_MODEL

    return DEFAULT_SEARCH_MODEL, DEFAULT_SYNTH_MODEL


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` every :class:`RunOptions` flag in place of its ``opts`` parameter.

    typer reads a command's signature; this one lists the command's own parameters with the
    options' fields where ``opts`` stood, and the command receives them as one ``RunOptions``.
    """
    keyword = inspect.Parameter.KEYWORD_ONLY
    hints = get_type_hints(RunOptions, include_extras=True)
    fields = [f.name for f in dataclasses.fields(RunOptions)]
    shared = [inspect.Parameter(f.name, keyword, annotation=hints[f.name], default=f.default) for f in dataclasses.fields(RunOptions)]
    signature = inspect.signature(command, eval_str=True)
    own = [p.replace(kind=keyword) for p in signature.parameters.values()]
    at = [p.name for p in own].index("opts")
    parameters = [*own[:at], *shared, *own[at + 1 :]]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        opts = RunOptions(**{name: kwargs.pop(name) for name in fields})
        return command(opts=opts, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    del wrapper.__wrapped__  # typer must read the signature above, not the command's
    return wrapper

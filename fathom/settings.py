"""One typed settings object for every knob: defaults, then a TOML file, then env vars, then flags.

Secrets (API keys) are read from the environment only, kept as ``SecretStr`` and excluded from
:meth:`Settings.public_dict`, which is what runs record. They never enter graph state.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from fathom.errors import ConfigError

SearchBackendName = Literal["tavily", "serper", "searxng", "ddg", "local", "mcp"]

# field name -> environment variable. These names are a contract other tools rely on.
ENV_VARS: dict[str, str] = {
    "search_model_url": "FATHOM_SEARCH_MODEL_URL",
    "synth_model_url": "FATHOM_SYNTH_MODEL_URL",
    "query_llm": "FATHOM_QUERY_LLM",
    "search_backend": "FATHOM_SEARCH_BACKEND",
    "search_protocol": "FATHOM_SEARCH_PROTOCOL",
    "searxng_url": "SEARXNG_URL",
    "serper_url": "SERPER_BASE_URL",
    "tavily_url": "TAVILY_BASE_URL",
    "mcp_server": "FATHOM_MCP_SERVER",
    "mcp_tool": "FATHOM_MCP_TOOL",
    "allow_hosts": "FATHOM_ALLOW_HOSTS",
    "max_rounds": "FATHOM_MAX_ROUNDS",
    "prompt": "FATHOM_PROMPT",
    "db_url": "FATHOM_DB_URL",
    "max_wall_seconds": "FATHOM_MAX_WALL_SECONDS",
    "model_answer_timeout_s": "FATHOM_MODEL_ANSWER_TIMEOUT",
    "max_calls_per_turn": "FATHOM_MAX_CALLS_PER_TURN",
    "context_tokens": "FATHOM_CONTEXT_TOKENS",
    "context_strategy": "FATHOM_CONTEXT_STRATEGY",
    "synth_prompt": "FATHOM_SYNTH_PROMPT",
    "prompts_base_url": "FATHOM_PROMPTS_URL",
    "language": "FATHOM_LANGUAGE",
    "verify": "FATHOM_VERIFY",
    "cache_ttl_s": "FATHOM_CACHE_TTL",
    "no_cache": "FATHOM_NO_CACHE",
    "cache_max_rows": "FATHOM_CACHE_MAX_ROWS",
    "search_concurrency": "FATHOM_SEARCH_CONCURRENCY",
    "search_rate_per_s": "FATHOM_SEARCH_RATE",
    "sglang_python": "FATHOM_SGLANG_PYTHON",
    "reader": "FATHOM_READER",
    "github_api_url": "FATHOM_GITHUB_API_URL",
    "github_raw_url": "FATHOM_GITHUB_RAW_URL",
    "reddit_url": "FATHOM_REDDIT_URL",
    "youtube_url": "FATHOM_YOUTUBE_URL",
    "arxiv_url": "FATHOM_ARXIV_URL",
    "wikipedia_url": "FATHOM_WIKIPEDIA_URL",
    "archive_url": "FATHOM_ARCHIVE_URL",
    "jina_url": "FATHOM_JINA_URL",
    "browser_path": "FATHOM_BROWSER",
    "prefetch_pages": "FATHOM_PREFETCH_PAGES",
    "prefetch_max_bytes": "FATHOM_PREFETCH_MAX_BYTES",
}
SECRET_ENV_VARS: dict[str, str] = {
    "tavily_api_key": "TAVILY_API_KEY",
    "serper_api_key": "SERPER_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "query_llm_api_key": "FATHOM_QUERY_LLM_API_KEY",
    "model_api_key": "FATHOM_MODEL_API_KEY",
    "github_token": "GITHUB_TOKEN",
    "jina_api_key": "JINA_API_KEY",
}
# Renamed prompt settings: the old config-file keys and environment variables are still read.
RENAMED: dict[str, str] = {"prompt_file": "prompt", "synth_prompt_file": "synth_prompt"}
OLD_ENV_VARS: dict[str, str] = {"prompt": "FATHOM_PROMPT_FILE", "synth_prompt": "FATHOM_SYNTH_PROMPT_FILE"}
PROMPT_CHOICES = ("trained", "builtin")  # or a file path; unset: trained once fetched, else builtin


class Settings(BaseModel):
    """Everything a run can be configured with. Build it with :meth:`Settings.load`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # models
    search_model_url: str = "http://127.0.0.1:8902"
    synth_model_url: str = "http://127.0.0.1:8903"
    query_llm: str = "none"
    # raw ChatML /generate, /v1 tool calling, or one of the paper's baseline agents (fathom/protocols/)
    search_protocol: Literal["fathom", "chat", "legacy", "r1-searcher", "zerosearch", "search-o1"] = "fathom"
    model_timeout_s: float = Field(600.0, gt=0)
    model_answer_timeout_s: float = Field(60.0, gt=0)  # silent this long (/health too): not answering
    model_retries: int = Field(3, ge=0, le=10)
    temperature: float = Field(0.6, ge=0, le=2)
    repetition_penalty: float = Field(1.05, gt=0, le=2)
    max_new_tokens_per_turn: int = Field(8192, ge=64)
    context_tokens: int = Field(40960, ge=1024)
    answer_reserve_tokens: int = Field(2048, ge=64)
    # Near the context limit: fold older tool results into digests (and research on), or answer.
    context_strategy: Literal["fold", "answer"] = "fold"
    prompt: str | None = None  # trained, builtin or a file (see PROMPT_CHOICES)
    prompts_base_url: str = "https://raw.githubusercontent.com/FractalAIResearchLabs/Fathom-DeepResearch"

    # synthesizer (deep research reports)
    synth_context_tokens: int = Field(131072, ge=4096)  # capped by what the server reports
    synth_max_new_tokens: int = Field(10000, ge=256)
    synth_temperature: float = Field(0.4, ge=0, le=2)
    synth_continuations: int = Field(2, ge=0, le=10)  # extra turns for a report cut by length
    synth_prompt: str | None = None  # trained, builtin or a file
    language: str = "English"

    # verification: off; on (an answer verbatim in a page read is supported, else a judge is
    # asked); strict (the judge is always asked). true/false (old values) mean on/off.
    verify: Literal["off", "on", "strict"] = "on"
    max_verify_loops: int = Field(2, ge=0, le=10)

    # budgets
    max_rounds: int = Field(64, ge=1, le=1000)
    max_calls_per_turn: int = Field(8, ge=1, le=64)
    max_wall_seconds: float = Field(3600.0, gt=0)

    # tools
    search_backend: SearchBackendName | None = None  # None: chosen from the keys present
    search_top_k: int = Field(10, ge=1, le=50)
    searxng_url: str | None = None
    serper_url: str = "https://google.serper.dev"
    tavily_url: str | None = None
    # the mcp backend: an MCP server (a command line run over stdio, or an http(s) URL) and its
    # search tool (None: the server's only tool, or its only tool named like "search")
    mcp_server: str | None = None
    mcp_tool: str | None = None
    allow_hosts: tuple[str, ...] = ()
    fetch_timeout_s: float = Field(20.0, gt=0)
    fetch_max_bytes: int = Field(5_000_000, ge=1024)
    tool_timeout_s: float = Field(90.0, gt=0)
    evidence_max_chars: int = Field(6000, ge=500)
    # searches in flight at once and started per second, per backend and process (None: the
    # backend's own default, see fathom.tools.search.limits)
    search_concurrency: int | None = Field(None, ge=1, le=256)
    search_rate_per_s: float | None = Field(None, gt=0)
    # pages of a search's top results read ahead while the model writes its next turn (0: none),
    # and the most page text (UTF-8 bytes) held read ahead at once (fathom.tools.prefetch)
    prefetch_pages: int = Field(3, ge=0, le=10)
    prefetch_max_bytes: int = Field(8_000_000, ge=0)
    # how query_url reads a page (fathom.tools.readers): auto (site readers, the page itself, a
    # headless browser when it needs JavaScript and the 'browser' extra is installed), static (no
    # browser) or jina (Jina's reader first). Each site's base URL can point elsewhere (a mirror,
    # a test's fake); wikipedia_url None reads the article's own wiki.
    reader: Literal["auto", "static", "jina"] = "auto"
    github_api_url: str = "https://api.github.com"
    github_raw_url: str = "https://raw.githubusercontent.com"
    reddit_url: str = "https://www.reddit.com"
    youtube_url: str = "https://www.youtube.com"
    arxiv_url: str = "https://arxiv.org"
    wikipedia_url: str | None = None
    archive_url: str = "https://archive.org"
    jina_url: str = "https://r.jina.ai"
    browser_path: str = "/usr/bin/chromium"

    # serving: the Python that has sglang (None: the one running Fathom)
    sglang_python: str | None = None

    # caches of search results, pages and evidence, in the run database
    cache_ttl_s: float = Field(7 * 24 * 3600.0, ge=0)  # 0: every entry is stale (nothing reused)
    no_cache: bool = False
    cache_max_rows: int = Field(20_000, ge=10)  # per cache table; the oldest rows go first

    # persistence
    db_url: str | None = None

    # secrets: environment only, never recorded
    tavily_api_key: SecretStr | None = None
    serper_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    query_llm_api_key: SecretStr | None = None
    model_api_key: SecretStr | None = None
    github_token: SecretStr | None = None  # sent to github_api_url only
    jina_api_key: SecretStr | None = None  # sent to jina_url only

    @field_validator("search_model_url", "synth_model_url", "serper_url", "searxng_url", "tavily_url", "prompts_base_url",
                     "github_api_url", "github_raw_url", "reddit_url", "youtube_url", "arxiv_url", "wikipedia_url",
                     "archive_url", "jina_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.field_name in ("search_model_url", "synth_model_url") and value.strip().startswith("local:"):
            # An in-process transformers model: local:REPO_ID, local:DIR, local:FILE.gguf, local:REPO::FILE.gguf
            if not value.strip()[len("local:"):].strip():
                raise ValueError("'local:' needs a model, e.g. local:FractalAIResearch/Fathom-Search-4B")
            return value.strip()
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value

    @field_validator("db_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        # No file name or URL holds one; SQLite's driver raised ValueError from its own thread.
        if value is not None and "\x00" in value:
            raise ValueError("a database path or URL cannot contain a NUL character")
        return value

    @field_validator("prompt", "synth_prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not text.strip():
            raise ValueError("must be trained, builtin or a prompt file")
        return text.strip() if text.strip() in PROMPT_CHOICES else text

    @field_validator("verify", mode="before")
    @classmethod
    def _verify(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "on" if value else "off"
        text = str(value).strip().lower()
        return {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(text, text)

    @field_validator("query_llm")
    @classmethod
    def _query_llm(cls, value: str) -> str:
        value = value.strip()
        if value == "none" or value.startswith(("openai:", "http://", "https://")):
            if value in ("openai:",):
                raise ValueError("'openai:' needs a model name, e.g. openai:gpt-4.1-mini")
            return value
        raise ValueError(
            f"{value!r} is not understood: use 'none', 'openai:MODEL' or an OpenAI-compatible "
            "base URL such as http://127.0.0.1:8905/v1"
        )

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _allow_hosts(cls, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = value.split(",")
        hosts = tuple(h.strip().lower() for h in value if h and h.strip())
        for host in hosts:
            if "/" in host or " " in host:
                raise ValueError(f"{host!r} is not a host[:port] entry")
        return hosts

    # ---- derived -------------------------------------------------------------------------

    @property
    def resolved_search_backend(self) -> SearchBackendName:
        """The backend to use: the one asked for, else the first whose key or URL is present."""
        if self.search_backend:
            return self.search_backend
        if self.tavily_api_key:
            return "tavily"
        if self.serper_api_key:
            return "serper"
        if self.searxng_url:
            return "searxng"
        return "ddg"

    def public_dict(self) -> dict[str, Any]:
        """JSON-friendly settings with every secret left out (safe for logs and run records)."""
        # db_url may hold a password, and a run record lives in that database anyway.
        data = self.model_dump(mode="json", exclude={*SECRET_ENV_VARS, "db_url"})
        data["search_backend"] = self.resolved_search_backend
        return data

    # ---- loading -------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        overrides: dict[str, Any] | None = None,
        *,
        config_file: str | Path | None = None,
        environ: dict[str, str] | None = None,
    ) -> Settings:
        """Merge defaults < config file < environment < ``overrides`` (flags); ``None`` values are ignored.

        Raises :class:`ConfigError` with a one-line, user-facing message on any bad value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if config_file is not None:
            values.update(_read_config_file(Path(config_file)))
        for old, new in RENAMED.items():
            if old in values:
                values.setdefault(new, values.pop(old))
        for name, var in {**ENV_VARS, **SECRET_ENV_VARS}.items():
            raw = env.get(var)
            if (raw is None or not raw.strip()) and name in OLD_ENV_VARS:
                raw = env.get(OLD_ENV_VARS[name])
            if raw is not None and raw.strip() != "":
                values[name] = raw
        for name, value in (overrides or {}).items():
            if value is not None and value != ():
                values[name] = value
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    data = data.get("fathom", data)
    secrets = set(SECRET_ENV_VARS) & set(data)
    if secrets:
        raise ConfigError(
            f"config file {path} holds {', '.join(sorted(secrets))}: keep API keys in the environment"
        )
    return data


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        var = ENV_VARS.get(field)
        flag = "--" + field.replace("_", "-")
        where = f"{flag} / {var}" if var else flag
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            where, msg = field, "is not a known setting"
        parts.append(f"{where}: {msg}")
    return "invalid settings: " + "; ".join(parts)


def child_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a program Fathom starts for the user (a stdio MCP search server): the
    user's own, less Fathom's API keys and ``FATHOM_*`` settings (a key goes only to its service;
    ``FATHOM_DB_URL`` may hold a password). The program's own keys pass through."""
    env = os.environ if environ is None else environ
    ours = set(SECRET_ENV_VARS.values())
    return {k: v for k, v in env.items() if k not in ours and not k.startswith("FATHOM_")}

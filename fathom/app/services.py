"""The one place where settings become clients, tools and stores.

Every API key is bound to the endpoint it belongs to (see :func:`query_llm_key`): a custom URL
never receives OpenAI's key, and model servers receive only ``FATHOM_MODEL_API_KEY``. Each
process opens one :class:`~fathom.store.Database` per URL and event loop (:func:`shared_database`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph

from fathom.app import upstream
from fathom.errors import ConfigError, ModelError, ToolError
from fathom.graph.build import build_graph
from fathom.graph.context import FathomContext, as_context
from fathom.models.base import ChatResult
from fathom.models.chat import ChatClient
from fathom.models.local import LocalClient, is_local_url
from fathom.models.sglang import SGLangClient
from fathom.ports import ResearchConfig, Services
from fathom.protocols.base import SearchProtocol
from fathom.protocols.chat import ChatToolsProtocol
from fathom.protocols.fathom import FathomProtocol
from fathom.protocols.legacy import LegacyProtocol
from fathom.protocols.prompts import CHAT_SYSTEM_PROMPT, DEFAULT_SEARCH_PROMPT, DEFAULT_SYNTH_PROMPT, Prompt
from fathom.protocols.prompts.evidence import EVIDENCE_SYSTEM_PROMPT, EVIDENCE_USER_PROMPT
from fathom.protocols.prompts.files import builtin, from_text, load_prompt_file
from fathom.protocols.prompts.tools import READER_NOTES
from fathom.protocols.tagged import FORMATS, MAIN_PROMPTS, PROTOCOLS
from fathom.settings import SECRET_ENV_VARS, Settings, child_environment
from fathom.store import Database, default_db_url
from fathom.store.cache import ToolCache
from fathom.tools.base import SearchBackend
from fathom.tools.evidence import EvidenceExtractor, QueryLLM
from fathom.tools.fetch import Fetcher
from fathom.tools.readers import ReaderChain
from fathom.tools.readers.archive import ArchiveReader
from fathom.tools.readers.arxiv import ArxivReader
from fathom.tools.readers.browser import BrowserReader, browser_available
from fathom.tools.readers.github import GitHubReader
from fathom.tools.readers.jina import JinaReader
from fathom.tools.readers.reddit import RedditReader
from fathom.tools.readers.wikipedia import WikipediaReader
from fathom.tools.readers.youtube import YouTubeReader
from fathom.tools.search.ddg import DdgBackend
from fathom.tools.search.limits import limit
from fathom.tools.search.mcp import McpSearchBackend
from fathom.tools.search.searxng import SearxngBackend
from fathom.tools.search.serper import SerperBackend
from fathom.tools.search.tavily import TavilyBackend
from fathom.tools.ssrf import Resolver
from fathom.tools.toolbox import Toolbox


def research_config(settings: Settings) -> ResearchConfig:
    """The plain configuration the nodes read, taken from ``settings``."""
    prompt = synth_prompt_of(settings)
    synth_prompt = "" if prompt is DEFAULT_SYNTH_PROMPT else prompt.text  # "": the nodes use ours
    # The trained system prompt goes with the user-turn lead-in the model was trained on.
    lead_in = _trained("--synth-prompt", "synth_lead_in")[0] if synth_prompt_choice(settings) == "trained" else ""
    names = {name for name in ResearchConfig.__dataclass_fields__ if name in Settings.model_fields} - {"synth_prompt"}
    config = ResearchConfig(
        **{name: getattr(settings, name) for name in names},
        synth_prompt=synth_prompt,
        synth_lead_in=lead_in,
        max_step_seconds=max(settings.tool_timeout_s, settings.model_timeout_s) + 30.0,
    )
    return dataclasses.replace(config, **_baseline_limits(settings))


def _baseline_limits(settings: Settings) -> dict[str, int]:
    """A tag protocol's own round limit and context window (upstream's), unless set."""
    fmt = FORMATS.get(settings.search_protocol)
    if fmt is None:
        return {}
    limits = {"max_rounds": fmt.max_rounds, "context_tokens": fmt.context_tokens}
    return {name: value for name, value in limits.items() if name not in settings.model_fields_set}


def build_services(
    settings: Settings, *, chat_model: BaseChatModel | None = None, database: Database | None = None
) -> Services:
    """Build every client ``settings`` describe; ``chat_model`` switches the search loop to tool
    calling; ``database`` (the caller's, left open) holds the tool caches.

    Raises :class:`ConfigError` (or :class:`ToolError`) when the configuration cannot work, so a
    run fails at its start, not mid-way.
    """
    config = research_config(settings)
    prompt = search_prompt_of(settings)
    needs_db = not settings.no_cache or settings.resolved_search_backend == "local"
    owned_db = Database(settings.db_url) if database is None and needs_db else None
    database = database or owned_db
    # What can fail on a bad setting is built first, before any client holds a connection.
    _check_local(settings)
    search_backend = make_search_backend(settings, database)
    query_llm = query_llm_client(settings)
    closers: list[Callable[[], Awaitable[Any]]] = []

    def keep(client: Any) -> Any:
        closers.append(client.aclose)
        return client

    if owned_db is not None:
        keep(owned_db)
    if query_llm is not None:
        keep(query_llm)  # shared by the toolbox and the judge: closed here
    protocol: SearchProtocol
    if chat_model is not None:
        protocol = ChatToolsProtocol(chat_model, _chat_prompt(prompt), temperature=settings.temperature)
    elif settings.search_protocol == "chat":
        client = keep(_search_model_chat(settings, "search model"))
        protocol = ChatToolsProtocol(client, _chat_prompt(prompt), temperature=settings.temperature)
    elif settings.search_protocol != "fathom":
        protocol = _baseline_protocol(settings, config, keep(_sglang(settings, settings.search_model_url, "search model")),
                                      prompt)
    else:
        sglang = keep(_sglang(settings, settings.search_model_url, "search model"))
        protocol = FathomProtocol(sglang, prompt, temperature=settings.temperature,
                                  repetition_penalty=settings.repetition_penalty)
    cache = None
    if not settings.no_cache:
        assert database is not None
        cache = ToolCache(database, ttl_s=settings.cache_ttl_s, max_rows=settings.cache_max_rows)
    tools = keep(toolbox(settings, query_llm=query_llm, search_backend=keep(search_backend), cache=cache))
    return Services(
        config=config,
        protocol=protocol,
        tools=tools,
        synth=keep(_sglang(settings, settings.synth_model_url, "synthesizer model")),
        # The judge of answers: the query LLM when configured, else the search model's chat route.
        # A local: search model has no /v1 route, and judging with it would evict the transcript's
        # KV prefix: no judge then (answers are reported unverified) unless a query LLM is set.
        judge=query_llm or (None if is_local_url(settings.search_model_url)
                            else _NoThinkingJudge(keep(_search_model_chat(settings, "judge (search model)")))),
        closers=closers,
        prefetch=tools.prefetcher,
    )


def _baseline_protocol(settings: Settings, config: ResearchConfig, client: Any, prompt: Prompt) -> SearchProtocol:
    """A baseline agent of the paper: ``legacy`` in Fathom's loop with ``web_search``/``web_visit``,
    or a tag protocol, each sampling as upstream did unless ``--temperature`` or
    ``--repetition-penalty`` is given."""
    if settings.search_protocol == "legacy":
        return LegacyProtocol(client, prompt, context_tokens=config.context_tokens,
                              reserve_tokens=config.answer_reserve_tokens, temperature=settings.temperature,
                              repetition_penalty=settings.repetition_penalty, top_k=settings.search_top_k)
    chosen = settings.model_fields_set
    texts = upstream.BASELINE_PROMPT_TEXTS[settings.search_protocol]
    side = None  # the summarising step's prompt: the trained one along with the trained main prompt
    if search_prompt_choice(settings) == "trained" and len(texts) > 1:
        side = upstream.as_replace_template(_trained("--prompt", texts[1])[0],
                                            ("search_query", "document", "prev_reasoning"), f"the trained {texts[1]}")
    return PROTOCOLS[settings.search_protocol](
        client, prompt.text, side_prompt=side,
        temperature=settings.temperature if "temperature" in chosen else None,
        repetition_penalty=settings.repetition_penalty if "repetition_penalty" in chosen else None,
    )


def toolbox(
    settings: Settings,
    *,
    query_llm: QueryLLM | None = None,
    search_backend: SearchBackend | None = None,
    cache: ToolCache | None = None,
    database: Database | None = None,
    resolver: Resolver | None = None,
) -> Toolbox:
    """The research tools ``settings`` describe; the arguments given replace what they would build.
    ``database`` (left open) holds the local corpus when ``search_backend`` is ``local``;
    ``resolver`` replaces the system's name resolution for page reads (tests resolve nothing)."""
    owned: list[Any] = []
    if search_backend is None:
        search_backend = make_search_backend(settings, database)
        owned.append(search_backend)
    if query_llm is None and (query_llm := query_llm_client(settings)) is not None:
        owned.append(query_llm)
    fetcher = Fetcher(allow_hosts=settings.allow_hosts, timeout_s=settings.fetch_timeout_s,
                      max_bytes=settings.fetch_max_bytes, resolver=resolver)
    owned.append(fetcher)
    reader = reader_chain(settings, fetcher)
    owned.append(reader)  # closed before the fetcher its browser reads through
    evidence_system, evidence_user = evidence_prompts_of(settings)
    return Toolbox(
        search_backend=search_backend,
        fetcher=fetcher,
        extractor=EvidenceExtractor(
            max_chars=settings.evidence_max_chars,
            llm=query_llm,
            system_prompt=evidence_system,
            user_prompt=evidence_user,
        ),
        tool_timeout_s=settings.tool_timeout_s,
        default_top_k=settings.search_top_k,
        cache=cache,
        corpus=getattr(search_backend, "corpus", None),  # the local backend's index
        reader=reader,
        prefetch_pages=settings.prefetch_pages,
        prefetch_max_bytes=settings.prefetch_max_bytes,
        owned=tuple(owned),
    )


def reader_chain(settings: Settings, fetcher: Fetcher) -> ReaderChain:
    """How ``query_url`` reads pages: the site readers, Jina's reader (``--reader jina``), the
    headless browser (``auto``, when installed) and archive.org, all through ``fetcher``. Each key
    goes to its own base URL only: ``GITHUB_TOKEN`` to the GitHub API, ``JINA_API_KEY`` to Jina."""
    t = settings.fetch_timeout_s
    sites = [
        GitHubReader(fetcher, api_url=settings.github_api_url, raw_url=settings.github_raw_url,
                     token=_secret(settings.github_token), timeout_s=t),
        RedditReader(fetcher, base_url=settings.reddit_url, timeout_s=t),
        YouTubeReader(fetcher, base_url=settings.youtube_url, notes=READER_NOTES, timeout_s=t * 1.5),
        ArxivReader(fetcher, base_url=settings.arxiv_url, notes=READER_NOTES, timeout_s=t * 2),
        WikipediaReader(fetcher, base_url=settings.wikipedia_url, timeout_s=t),
    ]
    jina = None
    if settings.reader == "jina":
        jina = JinaReader(fetcher, base_url=settings.jina_url, api_key=_secret(settings.jina_api_key), timeout_s=t * 1.5)
    browser = None
    if settings.reader == "auto" and browser_available(settings.browser_path):
        browser = BrowserReader(fetcher, path=settings.browser_path, timeout_s=t * 1.5)
    return ReaderChain(fetcher, sites=sites, jina=jina, browser=browser,
                       archive=ArchiveReader(fetcher, base_url=settings.archive_url, notes=READER_NOTES, timeout_s=t),
                       notes=READER_NOTES, browser_missing=settings.reader == "auto" and browser is None)


def make_search_backend(settings: Settings, database: Database | None = None) -> SearchBackend:
    """The backend ``settings.resolved_search_backend`` names, behind the process's per-backend
    concurrency and rate limits (the local backend reads its corpus from ``database``).

    Raises :class:`ConfigError` at once when it cannot work: a missing API key or URL (naming
    the environment variable to set), or ddgs not installed.
    """
    name = settings.resolved_search_backend
    timeout_s = settings.fetch_timeout_s
    try:
        if name == "tavily":
            key = _secret(settings.tavily_api_key) or ""
            backend, endpoint = TavilyBackend(key, base_url=settings.tavily_url, timeout_s=timeout_s), settings.tavily_url or ""
        elif name == "serper":
            key = _secret(settings.serper_api_key) or ""
            backend, endpoint = SerperBackend(key, base_url=settings.serper_url, timeout_s=timeout_s), settings.serper_url
        elif name == "searxng":
            backend, endpoint = SearxngBackend(settings.searxng_url or "", timeout_s=timeout_s), settings.searxng_url or ""
        elif name == "ddg":
            backend, endpoint = DdgBackend(timeout_s=min(timeout_s, 15.0)), ""
        elif name == "mcp":  # another MCP server's search tool; Fathom still reads the pages
            backend = McpSearchBackend(settings.mcp_server or "", tool=settings.mcp_tool, env=child_environment(),
                                       timeout_s=settings.tool_timeout_s)
            endpoint = settings.mcp_server or ""
        else:  # local: the corpus in the run database
            from fathom.store.corpus import Corpus
            from fathom.store.fulltext import LocalSearchBackend

            corpus = Corpus(database) if database is not None else Corpus.open(settings.db_url)
            backend, endpoint = LocalSearchBackend(corpus, owns_corpus=database is None), settings.db_url or ""
    except ToolError as exc:
        raise ConfigError(str(exc)) from None
    return limit(backend, endpoint, concurrency=settings.search_concurrency, rate_per_s=settings.search_rate_per_s)


def query_llm_key(settings: Settings) -> str | None:
    """The key for the query LLM: ``FATHOM_QUERY_LLM_API_KEY``, or ``OPENAI_API_KEY`` for an
    ``openai:`` spec only. A custom URL never receives OpenAI's key."""
    if settings.query_llm_api_key is not None:
        return _secret(settings.query_llm_api_key)
    if settings.query_llm.startswith("openai:"):
        return _secret(settings.openai_api_key)
    return None


def query_llm_client(settings: Settings) -> ChatClient | None:
    """The query LLM ``settings.query_llm`` names, or ``None`` for ``none`` (extractive evidence)."""
    try:
        return ChatClient.from_spec(settings.query_llm, api_key=query_llm_key(settings),
                                    timeout_s=min(60.0, settings.tool_timeout_s),
                                    answer_timeout_s=settings.model_answer_timeout_s)
    except ModelError as exc:  # e.g. an OpenAI spec without OPENAI_API_KEY
        raise ConfigError(f"query LLM {settings.query_llm!r} cannot be used: {exc}") from None


def judge_chat_client(settings: Settings, spec: str | None) -> ChatClient | None:
    """The chat model an eval's LLM judge asks: ``spec`` (``openai:MODEL`` or an OpenAI-compatible
    base URL), else the query LLM, else None. ``OPENAI_API_KEY`` goes to ``openai:`` specs only."""
    if not spec:
        return query_llm_client(settings)
    key = _secret(settings.openai_api_key) if spec.strip().startswith("openai:") else None
    try:
        return ChatClient.from_spec(spec, api_key=key, timeout_s=120.0, name="judge",
                                    answer_timeout_s=settings.model_answer_timeout_s)
    except ModelError as exc:
        raise ConfigError(f"--judge-model {spec!r} cannot be used: {exc}") from None


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


# ---- prompts: --prompt / --synth-prompt is trained, builtin or a file ---------------------------


def search_prompt_choice(settings: Settings) -> str:
    """``trained``, ``builtin`` or the prompt file: unset means trained once the protocol's texts
    are fetched (the raw Fathom protocol and the baselines), else builtin."""
    if settings.prompt is not None:
        return settings.prompt
    if settings.search_protocol == "chat":
        return "builtin"
    texts = upstream.BASELINE_PROMPT_TEXTS.get(settings.search_protocol, upstream.SEARCH_PROMPT_TEXTS)
    return "trained" if upstream.trained_installed(texts) else "builtin"


def synth_prompt_choice(settings: Settings) -> str:
    """Like :func:`search_prompt_choice`, for the synthesizer."""
    if settings.synth_prompt is not None:
        return settings.synth_prompt
    return "trained" if upstream.trained_installed(upstream.SYNTH_PROMPT_TEXTS) else "builtin"


def search_prompt_of(settings: Settings) -> Prompt:
    """The search system prompt ``settings.prompt`` selects.

    ``trained`` is the upstream prompt with the upstream tool schema list filled in, exactly as
    Fathom-Search-4B read it in training.
    """
    choice = search_prompt_choice(settings)
    if choice == "builtin":  # a tag protocol's own (legacy agents read the Fathom prompt)
        main = MAIN_PROMPTS.get(settings.search_protocol)
        return builtin(main) if main else DEFAULT_SEARCH_PROMPT
    if choice == "trained":
        protocol = settings.search_protocol
        if protocol == "chat":
            raise ConfigError("--prompt trained is the text a model was trained or evaluated with: it needs "
                              "--search-protocol fathom or a baseline (legacy, r1-searcher, zerosearch, search-o1)")
        if protocol in MAIN_PROMPTS:  # a tag protocol's main prompt, used as it is
            return from_text(_trained("--prompt", upstream.BASELINE_PROMPT_TEXTS[protocol][0])[0], _trained_source())
        texts = upstream.BASELINE_PROMPT_TEXTS["legacy"] if protocol == "legacy" else upstream.SEARCH_PROMPT_TEXTS
        system, schemas = _trained("--prompt", *texts)
        text = upstream.fill_format_template(system, {"func_schemas": schemas}, "the trained search prompt")
        return from_text(text, _trained_source())
    return _prompt_file("--prompt", choice)


def synth_prompt_of(settings: Settings) -> Prompt:
    """The synthesizer system prompt ``settings.synth_prompt`` selects."""
    choice = synth_prompt_choice(settings)
    if choice == "builtin":
        return DEFAULT_SYNTH_PROMPT
    if choice == "trained":
        (text,) = _trained("--synth-prompt", *upstream.SYNTH_PROMPT_TEXTS)
        return from_text(text, _trained_source())
    return _prompt_file("--synth-prompt", choice)


def evidence_prompts_of(settings: Settings) -> tuple[str, str]:
    """The query LLM's system and user prompts: the trained ones when the search prompt is
    ``trained`` and they were fetched, else ours."""
    if search_prompt_choice(settings) == "trained" and upstream.trained_installed(upstream.EVIDENCE_PROMPT_TEXTS):
        system, user = _trained("--prompt", *upstream.EVIDENCE_PROMPT_TEXTS)
        return system, upstream.as_replace_template(user, ("webpage_content", "goal"), "the trained evidence prompt")
    return EVIDENCE_SYSTEM_PROMPT, EVIDENCE_USER_PROMPT


def prompt_digests(settings: Settings) -> dict[str, dict[str, str]]:
    """What a run records of its prompts: where each came from and the sha256 of its text."""
    search, synth = search_prompt_of(settings), synth_prompt_of(settings)
    return {"search": {"source": search.source, "sha256": search.sha256},
            "synthesizer": {"source": synth.source, "sha256": synth.sha256}}


def _trained(flag: str, *names: str) -> list[str]:
    texts = [upstream.read_prompt(name) for name in names]
    if any(text is None for text in texts):
        raise ConfigError(f"{flag} trained: the upstream prompts are not installed; run 'fathom prompts fetch'")
    return [text for text in texts if text is not None]


def _trained_source() -> str:
    return f"trained (upstream {upstream.UPSTREAM_COMMIT[:12]})"


def _prompt_file(flag: str, path: str) -> Prompt:
    try:
        return load_prompt_file(path)
    except ValueError as exc:  # unreadable, not UTF-8, or empty
        raise ConfigError(f"{flag}: {exc}") from None


def _sglang(settings: Settings, url: str, name: str) -> SGLangClient | LocalClient:
    if is_local_url(url):  # local:MODEL runs in-process (loaded once per process per model)
        return LocalClient(url, name=name)
    return SGLangClient(url, timeout_s=settings.model_timeout_s, max_retries=settings.model_retries,
                        api_key=_secret(settings.model_api_key), name=name,
                        answer_timeout_s=settings.model_answer_timeout_s)


def _check_local(settings: Settings) -> None:
    """Fail at the start on a ``local:`` model that cannot work: a bad spec, no torch/transformers
    (the message says which extra to install), or ``--search-protocol chat`` (no /v1 route)."""
    if settings.search_protocol == "chat" and is_local_url(settings.search_model_url):
        raise ConfigError("--search-protocol chat needs an OpenAI-compatible server, not a local: search model: "
                          "drop --search-protocol chat or give --search-model-url http://HOST:PORT")
    for url in (settings.search_model_url, settings.synth_model_url):
        if is_local_url(url):
            LocalClient(url)  # loads nothing: parses the spec and checks the extra is installed


def _search_model_chat(settings: Settings, name: str) -> ChatClient:
    """The search model's OpenAI-compatible route (SGLang serves ``/v1`` beside ``/generate``)."""
    return ChatClient(settings.search_model_url + "/v1", None, api_key=_secret(settings.model_api_key),
                      timeout_s=settings.model_timeout_s, max_retries=settings.model_retries, name=name,
                      answer_timeout_s=settings.model_answer_timeout_s)


class _NoThinkingJudge:
    """The search model's chat route as the answer judge, asked not to think first (SGLang's
    ``chat_template_kwargs``; Qwen3 templates honour ``enable_thinking``), so the verdict's few
    dozen tokens are not spent on reasoning."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    async def complete(self, messages: list[dict[str, Any]], *, temperature: float = 0.0,
                       max_tokens: int = 64) -> ChatResult:
        return await self.client.complete(messages, temperature=temperature, max_tokens=max_tokens,
                                          extra_body={"chat_template_kwargs": {"enable_thinking": False}})


def _chat_prompt(prompt: Prompt) -> str:
    # A user's prompt file is written for the raw Fathom protocol; chat models get ours unless
    # the file has no schema slot (then it is a plain system prompt and fits either protocol).
    return CHAT_SYSTEM_PROMPT if prompt.source == "builtin" or "{func_schemas}" in prompt.text else prompt.text


# ---- per-process sharing ------------------------------------------------------------------------

_services: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Services]] = weakref.WeakKeyDictionary()
_databases: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Database]] = weakref.WeakKeyDictionary()


def shared_database(url: str | None) -> Database:
    """This process's :class:`Database` for ``url`` on the running event loop (never closed early:
    it lives as long as the loop)."""
    per_loop = _databases.setdefault(asyncio.get_running_loop(), {})
    key = str(url or default_db_url())
    if key not in per_loop:
        per_loop[key] = Database(key)
    return per_loop[key]


async def services_for(context: FathomContext | dict[str, Any] | None) -> Services:
    """The services of a run: the context's own, or built from its settings (or the environment)
    once per event loop and reused (LangGraph's server runs many threads on one loop).

    Building reads files and may create the data directory, so it runs in a worker thread.
    """
    context = as_context(context)
    if context.services is not None:
        return context.services
    settings = context.settings
    if not isinstance(settings, Settings):
        settings = Settings.load(settings or {})
    per_loop = _services.setdefault(asyncio.get_running_loop(), {})
    key = (settings.model_dump_json(), _secrets_digest(settings), id(context.chat_model))
    if key not in per_loop:
        database = shared_database(settings.db_url)
        built = await asyncio.to_thread(build_services, settings, chat_model=context.chat_model, database=database)
        per_loop.setdefault(key, built)
    return per_loop[key]


def _secrets_digest(settings: Settings) -> str:
    """A digest of the API keys: ``model_dump_json`` masks them, yet clients differ by key."""
    keys = [_secret(getattr(settings, name)) or "" for name in SECRET_ENV_VARS]
    return hashlib.sha256("\0".join(keys).encode()).hexdigest()


def research_graph(*, checkpointer: Any = None, name: str = "fathom") -> CompiledStateGraph:
    """The research graph with services built from settings when the context brings none.

    Input ``{"question": str}``; output ``answer``, ``sources``, ``status`` (see
    :class:`~fathom.graph.state.OutputState`). Without a checkpointer it runs under its parent's
    when embedded as a subgraph.
    """
    # Compiling costs milliseconds of schema introspection; an eval starts a run per question.
    return _compiled_research_graph(name).copy(update={"checkpointer": checkpointer})


@functools.cache
def _compiled_research_graph(name: str) -> CompiledStateGraph:
    return build_graph(services=services_for, name=name)


__all__ = ["build_services", "research_config", "research_graph", "services_for", "shared_database"]

"""Pick and build the search backend the settings ask for."""

from __future__ import annotations

from fathom.settings import Settings
from fathom.tools.base import SearchBackend, ToolError
from fathom.tools.search.ddg import DdgBackend
from fathom.tools.search.limits import limit
from fathom.tools.search.searxng import SearxngBackend
from fathom.tools.search.serper import SerperBackend
from fathom.tools.search.tavily import TavilyBackend


def make_search_backend(settings: Settings) -> SearchBackend:
    """The backend named by ``settings.resolved_search_backend``, ready to use, behind the
    process's per-backend concurrency and rate limits (see :mod:`fathom.tools.search.limits`).

    Raises :class:`ToolError` at once when it cannot work: a missing API key or URL (naming the
    environment variable to set), or ddgs not installed.
    """
    backend, endpoint = _make(settings)
    return limit(backend, endpoint, concurrency=settings.search_concurrency, rate_per_s=settings.search_rate_per_s)


def _make(settings: Settings) -> tuple[SearchBackend, str]:
    name = settings.resolved_search_backend
    timeout_s = settings.fetch_timeout_s
    if name == "tavily":
        key = settings.tavily_api_key.get_secret_value() if settings.tavily_api_key else ""
        return TavilyBackend(key, base_url=settings.tavily_url, timeout_s=timeout_s), settings.tavily_url or ""
    if name == "serper":
        key = settings.serper_api_key.get_secret_value() if settings.serper_api_key else ""
        return SerperBackend(key, base_url=settings.serper_url, timeout_s=timeout_s), settings.serper_url
    if name == "searxng":
        return SearxngBackend(settings.searxng_url or "", timeout_s=timeout_s), settings.searxng_url or ""
    if name == "ddg":
        return DdgBackend(timeout_s=min(timeout_s, 15.0)), ""
    if name == "local":
        from fathom.tools.corpus import Corpus  # the database layer, only when a corpus is searched
        from fathom.tools.search.local import LocalSearchBackend

        return LocalSearchBackend(Corpus.open(settings.db_url), owns_corpus=True), settings.db_url or ""
    raise ToolError(f"the {name!r} search backend is not available yet")

"""Web search backends behind :class:`~fathom.tools.base.SearchBackend`, and the result layout."""

from fathom.tools.search.ddg import DdgBackend
from fathom.tools.search.http import RetryableError, RetryPolicy
from fathom.tools.search.results import (
    dedupe_hits,
    format_search_results,
    normalize_url,
)
from fathom.tools.search.searxng import SearxngBackend
from fathom.tools.search.serper import SerperBackend
from fathom.tools.search.tavily import TavilyBackend

__all__ = [
    "DdgBackend",
    "RetryPolicy",
    "RetryableError",
    "SearxngBackend",
    "SerperBackend",
    "TavilyBackend",
    "dedupe_hits",
    "format_search_results",
    "normalize_url",
]

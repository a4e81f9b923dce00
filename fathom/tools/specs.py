"""The two research tools the search model may call, as data: names, parameter schemas and limits.

Only structure lives here. What the model is told about the tools (their descriptions) and the
allow-list check with its errors addressed to the model are in :mod:`fathom.protocols.prompts.tools`
and :mod:`fathom.protocols.calls`, above this layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_TOP_K = 50
MAX_TEXT_ARG = 2000


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]

    def as_function(self) -> dict[str, Any]:
        """The schema as the Fathom prompt lists it: ``{"name", "description", "parameters"}``."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def as_openai_tool(self) -> dict[str, Any]:
        """The schema in OpenAI tool-calling form."""
        return {"type": "function", "function": self.as_function()}


SEARCH_URLS_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string"}, "top_k": {"type": "integer", "default": 10}},
    "required": ["query"],
}

QUERY_URL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"url": {"type": "string"}, "goal": {"type": "string"}},
    "required": ["url", "goal"],
}

# Every tool, by name, in the order the model is shown them.
TOOL_PARAMETERS: dict[str, dict[str, Any]] = {
    "search_urls": SEARCH_URLS_PARAMETERS,
    "query_url": QUERY_URL_PARAMETERS,
}

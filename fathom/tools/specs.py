"""The two research tools the search model may call, as data: names, schemas and argument checks.

This is the allow-list: a call whose name is not here, or whose arguments do not fit the schema,
is refused with a message the model can act on. Nothing the model writes is ever executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


SEARCH_URLS = ToolSpec(
    name="search_urls",
    description=(
        "Run a web search for a text query and get back a ranked list of result links, "
        "each with its title and a short snippet."
    ),
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}, "top_k": {"type": "integer", "default": 10}},
        "required": ["query"],
    },
)

QUERY_URL = ToolSpec(
    name="query_url",
    description=(
        "Open one web page and get back the evidence on it that serves a stated goal: "
        "the passages relevant to what you want to learn from that page."
    ),
    parameters={
        "type": "object",
        "properties": {"url": {"type": "string"}, "goal": {"type": "string"}},
        "required": ["url", "goal"],
    },
)

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in (SEARCH_URLS, QUERY_URL)}

MAX_TOP_K = 50
MAX_TEXT_ARG = 2000


class ToolCallError(ValueError):
    """A tool call the model wrote cannot be run; the message tells the model how to fix it."""


def validate_call(name: Any, arguments: Any) -> dict[str, Any]:
    """Check a call against the allow-list and return its arguments, cleaned and typed.

    Raises :class:`ToolCallError` with a message addressed to the model.
    """
    if not isinstance(name, str) or name not in TOOLS:
        known = ", ".join(TOOLS)
        raise ToolCallError(f"unknown tool {name!r}; the available tools are: {known}")
    if not isinstance(arguments, dict):
        raise ToolCallError(f"the arguments of {name} must be a JSON object")
    spec = TOOLS[name]
    properties = spec.parameters["properties"]
    unknown = sorted(set(arguments) - set(properties))
    if unknown:
        raise ToolCallError(f"{name} does not take {', '.join(unknown)}; it takes {', '.join(properties)}")
    missing = [key for key in spec.parameters["required"] if key not in arguments]
    if missing:
        raise ToolCallError(f"{name} needs the argument(s) {', '.join(missing)}")
    clean: dict[str, Any] = {}
    for key, value in arguments.items():
        kind = properties[key]["type"]
        if kind == "string":
            if not isinstance(value, str) or not value.strip():
                raise ToolCallError(f"{name}: {key} must be a non-empty string")
            if len(value) > MAX_TEXT_ARG:
                raise ToolCallError(f"{name}: {key} is longer than {MAX_TEXT_ARG} characters")
            clean[key] = value.strip()
        elif kind == "integer":
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
                raise ToolCallError(f"{name}: {key} must be an integer from 1 to {MAX_TOP_K}")
            clean[key] = value
    return clean

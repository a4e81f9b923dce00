"""The allow-list: the tools the search model is shown, and the check every call it writes passes.

A call whose name is not here, or whose arguments do not fit the schema, is refused with a message
the model can act on (the wording is in :mod:`fathom.protocols.prompts.tools`). Nothing the model
writes is ever executed.
"""

from __future__ import annotations

import re
from typing import Any

from fathom.protocols.prompts import tools as say
from fathom.tools.specs import MAX_TEXT_ARG, MAX_TOP_K, TOOL_PARAMETERS, ToolSpec

TOOLS: dict[str, ToolSpec] = {
    name: ToolSpec(name, say.TOOL_DESCRIPTIONS[name], parameters) for name, parameters in TOOL_PARAMETERS.items()
}


_SMALL_INTEGER = re.compile(r"[0-9]{1,9}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class ToolCallError(ValueError):
    """A tool call the model wrote cannot be run; the message tells the model how to fix it."""


def validate_call(name: Any, arguments: Any) -> dict[str, Any]:
    """Check a call against the allow-list and return its arguments, cleaned and typed.

    Raises :class:`ToolCallError` with a message addressed to the model.
    """
    if not isinstance(name, str) or name not in TOOLS:
        raise ToolCallError(say.unknown_tool_error(name, ", ".join(TOOLS)))
    if not isinstance(arguments, dict):
        raise ToolCallError(say.tool_arguments_not_object_error(name))
    spec = TOOLS[name]
    properties = spec.parameters["properties"]
    unknown = sorted(set(arguments) - set(properties))
    if unknown:
        raise ToolCallError(say.unknown_arguments_error(name, ", ".join(unknown), ", ".join(properties)))
    missing = [key for key in spec.parameters["required"] if key not in arguments]
    if missing:
        raise ToolCallError(say.missing_arguments_error(name, ", ".join(missing)))
    clean: dict[str, Any] = {}
    for key, value in arguments.items():
        kind = properties[key]["type"]
        if kind == "string":
            if not isinstance(value, str) or not value.strip():
                raise ToolCallError(say.empty_string_error(name, key))
            if len(value) > MAX_TEXT_ARG:
                raise ToolCallError(say.too_long_error(name, key, MAX_TEXT_ARG))
            if _SURROGATE.search(value):  # from a "\\ud800" escape: no URL, query or cache key can hold it
                raise ToolCallError(say.unpaired_surrogate_error(name, key))
            clean[key] = value.strip()
        elif kind == "integer":
            if isinstance(value, str) and _SMALL_INTEGER.fullmatch(value.strip()):
                value = int(value)  # ASCII digits only: "²".isdigit() holds, int("²") raises
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
                raise ToolCallError(say.integer_range_error(name, key, MAX_TOP_K))
            clean[key] = value
    return clean

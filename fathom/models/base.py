"""Shared types of the model clients: what a completion returns and how calls fail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fathom.errors import ModelError

__all__ = ["ChatResult", "ContextLengthError", "FinishReason", "Generation", "ModelError", "ModelNotAnsweringError",
           "ModelUnavailableError"]

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class Generation:
    """One completion of a raw prompt, with the server's own token counts."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    matched_stop: str | int | None = None


@dataclass(frozen=True)
class ChatResult:
    """One chat completion: text, tool calls (arguments as raw JSON text) and usage."""

    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"id","name","arguments"}
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning: str | None = None


class ModelUnavailableError(ModelError):
    """The server could not be reached (down, refused, timed out) after the allowed retries."""


class ModelNotAnsweringError(ModelUnavailableError):
    """The server took the request but said nothing, to it nor to a probe, for the answer
    timeout (see :mod:`fathom.models.watch`): a hung server. Never retried; a run stops
    ``interrupted`` and resumes once the server answers again."""


class ContextLengthError(ModelError):
    """The prompt plus requested tokens do not fit the model's context window."""

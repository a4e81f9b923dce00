"""Prompt templates as data: our built-in text, the upstream text the models were trained on, or
a user's prompt file read byte for byte.

``--prompt trained`` uses the upstream texts ``fathom prompts fetch`` installed (assembled by
``fathom.app.services``); ``--prompt FILE`` (or ``--synth-prompt FILE``) uses the file unchanged
(no stripping, no newline conversion), with ``{func_schemas}`` replaced by the tool schema list.
``sha256`` identifies the text a run used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SCHEMA_PLACEHOLDER = "{func_schemas}"


@dataclass(frozen=True)
class Prompt:
    """A prompt template plus where it came from: ``sha256`` is recorded with each run."""

    text: str
    source: str
    sha256: str

    def render(self, func_schemas: str) -> str:
        # A plain replace, not str.format: prompts are full of literal braces (\\boxed{}).
        return self.text.replace(SCHEMA_PLACEHOLDER, func_schemas)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def builtin(text: str) -> Prompt:
    """One of our own prompts, as a :class:`Prompt`."""
    return Prompt(text, "builtin", _digest(text))


def from_text(text: str, source: str) -> Prompt:
    """A prompt assembled elsewhere (the trained text, say), named by ``source``."""
    return Prompt(text, source, _digest(text))


def load_prompt_file(path: str | Path) -> Prompt:
    """Read a prompt file exactly as stored (UTF-8, newlines untouched)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read prompt file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"prompt file {path} is not UTF-8 text") from None
    if not text.strip():
        raise ValueError(f"prompt file {path} is empty")
    return Prompt(text, str(path), hashlib.sha256(raw).hexdigest())

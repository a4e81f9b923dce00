"""Fathom's own prompt wording, and loading a user's prompt file byte for byte.

The defaults follow what the Fathom-Search-4B prompt must say (see the protocol reference) in our
own words. Users who want the exact text the model was trained on pass it with ``--prompt-file``;
the file is used unchanged (no stripping, no newline conversion), with ``{func_schemas}`` replaced
by the tool schema list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fathom.tools.specs import TOOLS

SCHEMA_PLACEHOLDER = "{func_schemas}"

SEARCH_SYSTEM_PROMPT = """\
You are a tireless web researcher. Your job is to find accurate answers to hard questions by \
searching the internet and reading what you find, and you keep going until you have the answer.

You can call tools. A task usually takes many rounds of tool calls, and one round may hold several \
calls that run at the same time.

How you work:
1. **Dig deep.** Try many queries and angles over many rounds; one search is rarely enough.
2. **Check before you answer.** Confirm key facts in more than one source before you commit.
3. **Judge your sources.** Prefer recent, relevant and credible pages; notice when sources disagree.

The tools, described in JSONSchema:
```json
{func_schemas}
```

Each turn, think first inside <think> </think>, then either call tools or answer. Put each call \
inside <tool_call> </tool_call> as a JSON object with the tool name and its arguments:
<tool_call>
{"name": <tool name>, "arguments": <arguments as a JSON object>}
</tool_call>
Tool results come back to you in the next message. Keep calling tools until you have found the \
answer. When you are done, write the final answer once, inside \\boxed{} and with no tool call in \
that turn, for example: the boiling point is \\[ \\boxed{100C} \\]
"""

FORCE_ANSWER_NOTE = (
    "Your research budget is used up ({reason}). Do not call any more tools. Using what you have "
    "found so far, give your best final answer now, inside \\boxed{{}}."
)


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


DEFAULT_SEARCH_PROMPT = Prompt(SEARCH_SYSTEM_PROMPT, "builtin", _digest(SEARCH_SYSTEM_PROMPT))


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


def search_prompt(prompt_file: str | Path | None) -> Prompt:
    """The search system prompt: the user's file when given, else ours."""
    return load_prompt_file(prompt_file) if prompt_file else DEFAULT_SEARCH_PROMPT


def python_repr_schemas() -> str:
    """The tool list as the Fathom-Search-4B prompt shows it: a Python repr, as the model saw in training."""
    return repr([spec.as_function() for spec in TOOLS.values()])

CHAT_SYSTEM_PROMPT = """\
You are a tireless web researcher. Find an accurate answer to the user's question by searching the \
web with the tools you have and reading the pages you find. Work over many rounds; call several \
tools at once when they are independent. Confirm key facts in more than one credible source. \
When you are sure, stop calling tools and reply with the final answer inside \\boxed{}, for \
example: \\boxed{Michio Sugeno}.
"""

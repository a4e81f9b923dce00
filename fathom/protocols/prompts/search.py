"""What the search model reads: its system prompts, the forced-answer note, and the notes that
tell it a turn went wrong (cut off, empty, unpaired tags, calls inside the thinking, refused calls).

The defaults follow what the Fathom-Search-4B prompt must say (see the protocol reference) in our
own words; users who want the exact trained-on text pass a prompt file (see :mod:`.files`).
Every note here is appended to the transcript, so its wording is part of the prompt prefix the
server caches: change it only on purpose.
"""

from __future__ import annotations

from pathlib import Path

from fathom.protocols.prompts.files import Prompt, builtin, load_prompt_file

# ---- system prompts -----------------------------------------------------------------------------

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

DEFAULT_SEARCH_PROMPT = builtin(SEARCH_SYSTEM_PROMPT)

# For chat models with structured tool calling (the tools go in the request, not in the prompt).
CHAT_SYSTEM_PROMPT = """\
You are a tireless web researcher. Find an accurate answer to the user's question by searching the \
web with the tools you have and reading the pages you find. Work over many rounds; call several \
tools at once when they are independent. Confirm key facts in more than one credible source. \
When you are sure, stop calling tools and reply with the final answer inside \\boxed{}, for \
example: \\boxed{Michio Sugeno}.
"""


# ---- when a budget runs out ---------------------------------------------------------------------

FORCE_ANSWER_NOTE = (
    "Your research budget is used up ({reason}). Do not call any more tools. Using what you have "
    "found so far, give your best final answer now, inside \\boxed{{}}."
)


def rounds_limit_reason(max_rounds: int) -> str:
    """The ``{reason}`` of :data:`FORCE_ANSWER_NOTE` when the turn limit is reached."""
    return f"the limit of {max_rounds} turns"


def time_limit_reason(max_wall_seconds: float) -> str:
    """The ``{reason}`` when the wall-clock budget is used up."""
    return f"the time limit of {max_wall_seconds:.0f} s"


def context_limit_reason(context_tokens: int) -> str:
    """The ``{reason}`` when the context window is (nearly) full."""
    return f"the context window of {context_tokens} tokens"


# ---- notes on a turn that went wrong (the model's next user turn) -------------------------------

UNPAIRED_CALL_TAGS_NOTE = (
    "Your tool calls were not run: the <tool_call> and </tool_call> tags do not pair up. "
    "Write each call as <tool_call>{JSON}</tool_call>."
)
CALLS_IN_THINK_NOTE = (
    "Tool calls written inside <think> … </think> are not run. Close your thinking with "
    "</think>, then write the calls."
)
EMPTY_TURN_NOTE = "Your last turn was empty. Continue: call a tool or give your final answer."


def cut_off_note(completion_tokens: int) -> str:
    """A turn that hit its token limit: nothing in it ran."""
    return (
        f"Your last turn was cut off after {completion_tokens} tokens, before it "
        "finished, so nothing in it was run. Think less and go straight to your next tool call "
        "or your final answer."
    )


# ---- the transcript as the model sees it again --------------------------------------------------

# Stands in for an old tool result when the prompt is compacted to fit the context window.
ELIDED_TOOL_RESULT = "[this older tool result was removed to fit the context window]"


# A forced turn (the budget is used up) that still calls tools: each call gets this error as its
# tool response, and the model is asked once more to answer.
FORCED_CALL_ERROR = "not run: your research budget is used up and no more tools run; answer now with what you have"

# Older tool results folded into digests to keep the transcript inside the context window. The
# label starts every digest, so the model can tell a digest from a full result.
FOLDED_LABEL = "[folded: key lines only]"


def folded_page(url: str, title: str, lines: list[str]) -> str:
    """The digest of a page read: its title, its address (when the call does not already show it)
    and its most relevant lines."""
    head = " ".join(part for part in (FOLDED_LABEL, title, url and f"<{url}>") if part)
    return "\n".join([head, *(f"- {line}" for line in lines)])


def folded_search(hits: list[tuple[str, str]]) -> str:
    """The digest of a search: the URLs it found, with their titles."""
    return "\n".join([FOLDED_LABEL, *(f"- {url}" + (f" {title}" if title and title != url else "") for url, title in hits)])


def too_many_calls_error(limit: int) -> str:
    """The error of each call beyond the per-turn limit (it is refused, not run)."""
    return f"not run: at most {limit} tool calls are run per turn; call it again in your next turn"


def search_prompt(prompt_file: str | Path | None) -> Prompt:
    """The search system prompt: the user's file (bytes unchanged) when given, else ours."""
    return load_prompt_file(prompt_file) if prompt_file else DEFAULT_SEARCH_PROMPT

"""folding: keep a long run inside the search model's context window by folding old tool results.

When the next prompt nears the context budget (``FOLD_AT`` of the research limit, well before the
forced answer), the oldest tool results the model has already read are folded in one step: a page
read becomes its digest (URL, title and the few evidence lines that best match the question and
the call's goal, ranked with :func:`fathom.tools.passages.rank_passages`), a search its list of URLs
and titles. The model's own turns stay whole: they carry its reasoning.

Nothing in ``messages`` is rewritten. A fold is a record in state (``folds``) plus the digests by
message id (``digests``); the search node hands the protocol :func:`folded_view` of the transcript.
So the synthesizer and ``runs show`` still read every full result, the prompt stays append-only
between two folds (the server's prefix cache is lost at most once per fold), and a resumed run
renders byte for byte what it would have without the crash: a fold is decided from checkpointed
state only, inside the search step that uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage

from fathom.graph.state import FoldRecord
from fathom.nodes.budget import research_limit
from fathom.ports import ResearchConfig
from fathom.protocols.base import SearchProtocol, call_order
from fathom.protocols.prompts import search as say
from fathom.tools.passages import rank_passages, split_passages

FOLD_AT = 0.8  # fold when the prompt estimate reaches this share of the research limit,
FOLD_TO = 0.3  # folding the oldest results (at least half of them) until it is down to this share
DIGEST_LINES = 3  # evidence lines a page digest keeps at most,
DIGEST_CHARS = 360  # in this many characters at most,
DIGEST_LINE_CHARS = 200  # each line cut to this many
SEARCH_DIGEST_HITS = 10
_MARKER = re.compile(r"^\[[^\]]*\]$")  # "[…]", "[truncated: …]", "[note: …]": layout, not evidence


@dataclass(frozen=True)
class Fold:
    """One fold: its record for ``state["folds"]`` and the new digests by message id."""

    record: FoldRecord
    digests: dict[str, str]

    @property
    def saved_tokens(self) -> int:
        """The estimated prompt tokens the fold saves."""
        return self.record["tokens_before"] - self.record["tokens_after"]


_SHOWN_MAX = 4096  # folded results whose view is kept (a few long runs' worth); then start over
_shown: dict[tuple[str, str], ToolMessage] = {}  # (message id, digest) -> the message as shown


def folded_view(messages: list[AnyMessage], digests: dict[str, str]) -> list[AnyMessage]:
    """The transcript as the model reads it: each folded tool result replaced by its digest."""
    if not digests:
        return messages
    return [
        _shown_folded(m, m.id, digest)
        if isinstance(m, ToolMessage) and m.id is not None and (digest := digests.get(m.id)) is not None
        else m
        for m in messages
    ]


def _shown_folded(message: ToolMessage, message_id: str, digest: str) -> ToolMessage:
    """``message`` with its digest for content.

    A search step asks for the view several times (fold planning, budget, prompt) and every
    later step again, each time over every folded result; the copy made the first time is
    handed out again while ``message`` still has the fields it was made from (the copy is a
    shallow one, so anything changed since, even in place, shows or makes a new one).
    """
    key = (message_id, digest)
    shown = _shown.get(key)
    if (
        shown is not None
        and type(shown) is type(message)
        and shown.__dict__ == {**message.__dict__, "content": digest}
        and shown.__pydantic_extra__ == message.__pydantic_extra__
    ):
        return shown
    shown = message.model_copy(update={"content": digest})
    if len(_shown) >= _SHOWN_MAX:
        _shown.clear()
    _shown[key] = shown
    return shown


def plan_fold(
    *,
    messages: list[AnyMessage],
    digests: dict[str, str],
    question: str,
    prompt_tokens: int,
    rounds: int,
    settings: ResearchConfig,
    protocol: SearchProtocol,
) -> Fold | None:
    """The fold to take before round ``rounds + 1``, or None (not needed, or nothing to fold).

    ``prompt_tokens`` is the next prompt's estimate with the folds so far. Candidates are the
    unfolded, successful tool results the model has already read (before its latest turn), in
    reading order; the oldest are folded until the estimate is down to ``FOLD_TO`` of the
    research limit, and at least half of them, so folds are few and large.
    """
    limit = research_limit(settings)
    if settings.context_strategy != "fold" or prompt_tokens < FOLD_AT * limit:
        return None
    last_turn = max((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), default=-1)
    candidates = [
        m
        for i in call_order(messages)
        if i < last_turn
        and isinstance(m := messages[i], ToolMessage)
        and m.id
        and m.id not in digests
        and m.status != "error"
    ]
    at_least = (len(candidates) + 1) // 2
    new: dict[str, str] = {}
    saved = 0
    for n, message in enumerate(candidates):
        if n >= at_least and prompt_tokens - saved <= FOLD_TO * limit:
            break
        digest = digest_of(message, question)
        gain = 0 if digest is None else protocol.estimate_tokens(str(message.content)) - protocol.estimate_tokens(digest)
        if digest is None or gain <= 0:
            continue  # already shorter than its digest: it stays whole
        new[str(message.id)] = digest
        saved += gain
    if not new:
        return None
    record = FoldRecord(
        at_round=rounds + 1,
        message_ids=list(new),
        tokens_before=prompt_tokens,
        tokens_after=prompt_tokens - saved,
    )
    return Fold(record, new)


def digest_of(message: ToolMessage, question: str) -> str | None:
    """What a folded tool result shows: a search's URLs and titles, a page's key lines; None for
    anything else."""
    artifact: dict[str, Any] = message.artifact if isinstance(message.artifact, dict) else {}
    sources = [s for s in artifact.get("sources") or [] if isinstance(s, dict) and s.get("url")]
    if message.name == "search_urls":
        return say.folded_search([(s["url"], s.get("title") or "") for s in sources[:SEARCH_DIGEST_HITS]])
    if message.name == "query_url":
        args = artifact.get("args") or {}
        asked = str(args.get("url", ""))
        url = sources[0]["url"] if sources else asked
        title = sources[0].get("title") or "" if sources else ""
        query = f"{question} {args.get('goal', '')}"
        lines = key_lines(str(message.content), query, skip=url)
        # The call, shown with its result, already names the URL asked for; a redirect's target is new.
        return say.folded_page("" if url == asked else url, title, lines)
    return None


def key_lines(text: str, query: str, *, skip: str = "") -> list[str]:
    """The pieces of ``text`` that best match ``query`` (``DIGEST_LINES`` at most, within
    ``DIGEST_CHARS``), in text order, one line each.

    Layout lines (markers in brackets, labels ending in a colon, the header naming the URL
    ``skip``) are not evidence and never chosen; with no match at all the first piece stands in.
    """
    # Layout lines become blank lines: blocks stay apart as the passage splitter expects.
    kept = [line if _is_evidence(line.strip(), skip) else "" for line in text.splitlines()]
    pieces = [
        p
        for p in split_passages("\n".join(kept), target_chars=1, max_chars=DIGEST_LINE_CHARS)
        if not _MARKER.match(p.text.strip())  # a section label cut off from its text
    ]
    if not pieces:
        return []
    scores = rank_passages(pieces, query)
    ranked = [i for i in sorted(range(len(pieces)), key=lambda i: (-scores[i], i)) if scores[i] > 0] or [0]
    chosen: list[int] = []
    used = 0
    for i in ranked[:DIGEST_LINES]:
        line = _one_line(pieces[i].text)
        if chosen and used + len(line) > DIGEST_CHARS:
            break
        chosen.append(i)
        used += len(line)
    return [_one_line(pieces[i].text) for i in sorted(chosen)]


def _is_evidence(line: str, skip: str) -> bool:
    if not line or _MARKER.match(line) and not line.startswith("[Section:"):
        return False  # a section label is kept: its words help the ranking
    if skip and skip in line:
        return False
    return not (line.endswith(":") and len(line) < 40)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= DIGEST_LINE_CHARS else line[: DIGEST_LINE_CHARS - 1].rstrip() + "\u2026"

"""How the verify node settles an answer: verbatim in the evidence, else a judge's short verdict.

The cheap path first: a boxed answer that appears, once normalised (:func:`normalise`: case,
accents, punctuation, whitespace and digit grouping such as ``1,897``), in the text of a page the
run read successfully is supported without asking any model. Otherwise a chat model judges:
our own prompt (in :mod:`fathom.protocols.prompts.judge`) with numbered evidence, and a reply of
one short JSON line. Replies that are not clean JSON are still read (a fenced block, or
SUPPORTED / UNSUPPORTED words), and anything unreadable is "unverified".
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AnyMessage, ToolMessage

from fathom.protocols.prompts.judge import JUDGE_SYSTEM_PROMPT, NO_EVIDENCE, evidence_block, judge_user_message

Verdict = Literal["supported", "unsupported", "unverified"]
EVIDENCE_CHARS = 12_000
JUDGE_MAX_TOKENS = 64  # the verdict is one short JSON line, never a paragraph
# Who settled a verdict (``Judgement.decided_by``).
BY_EVIDENCE = "verbatim in evidence"
BY_JUDGE = "judge"
# Answers too short or too common to prove anything by appearing on a page: the judge decides.
MIN_VERBATIM_CHARS = 3
TOO_COMMON = frozenset({"yes", "no", "true", "false", "none", "unknown", "n a"})


@dataclass
class Judgement:
    verdict: Verdict
    reason: str = ""
    missing: str = ""
    urls: list[str] = field(default_factory=list)
    decided_by: str = ""  # BY_EVIDENCE, BY_JUDGE, or "" when nothing checked the answer

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "missing": self.missing, "urls": self.urls,
                "decided_by": self.decided_by}


@dataclass(frozen=True)
class Evidence:
    """One successful tool result as the verifier sees it: the tool, the page's URL (``""`` for a
    search) and the text the model read."""

    tool: str
    url: str
    text: str


def evidence_of(messages: list[AnyMessage]) -> list[Evidence]:
    """The successful tool results, in call order."""
    found = []
    for message in messages:
        if not isinstance(message, ToolMessage) or not _ok(message):
            continue
        text = str(message.content).strip()
        if text:
            found.append(Evidence(str(message.name or ""), _page_url(message), text))
    return found


def _ok(message: ToolMessage) -> bool:
    artifact = message.artifact if isinstance(message.artifact, dict) else {}
    return bool(artifact["ok"]) if "ok" in artifact else message.status != "error"


def _page_url(message: ToolMessage) -> str:
    if message.name != "query_url":
        return ""
    artifact = message.artifact if isinstance(message.artifact, dict) else {}
    sources = [s for s in artifact.get("sources") or [] if isinstance(s, dict) and s.get("url")]
    if sources:
        return str(sources[0]["url"])
    args = artifact.get("args") if isinstance(artifact.get("args"), dict) else {}
    return str(args.get("url") or "")


# ---- the verbatim path ----------------------------------------------------------------------------

# A number written in groups of three digits: 1,897 / 1 897 / 1'897 / 21,400,000 (NFKD has made
# no-break and thin spaces plain spaces by then).
_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:[,_' ]\d{3})+(?![\d])")
_SEPARATORS = re.compile(r"[,_' ]")
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")  # accents
_NON_WORD = re.compile(r"[\W_]+")  # punctuation, symbols, spaces (regex passes over long pages fast)


def normalise(text: str) -> str:
    """``text`` for matching: NFKD without accents, casefolded, digit groups joined (``1,897`` is
    ``1897``), punctuation and symbols turned to spaces, whitespace collapsed."""
    text = _COMBINING.sub("", unicodedata.normalize("NFKD", text)).casefold()
    text = _GROUPED.sub(lambda m: _SEPARATORS.sub("", m.group(0)), text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def verbatim_support(answer: str, evidence: list[Evidence]) -> Judgement | None:
    """Supported when the normalised answer appears, as whole words, in a page read successfully
    (``query_url``); None when it does not, or is too short or common to tell (the judge decides)."""
    wanted = normalise(answer)
    if len(wanted.replace(" ", "")) < MIN_VERBATIM_CHARS or wanted in TOO_COMMON:
        return None
    needle = f" {wanted} "
    urls = [e.url for e in evidence if e.tool == "query_url" and needle in f" {normalise(e.text)} "]
    if not urls:
        return None
    return Judgement("supported", reason=f"the answer appears verbatim in {len(urls)} page(s) read",
                     urls=list(dict.fromkeys(u for u in urls if u)), decided_by=BY_EVIDENCE)


# ---- the judge --------------------------------------------------------------------------------------


def judge_evidence(evidence: list[Evidence], max_chars: int = EVIDENCE_CHARS) -> list[Evidence]:
    """What the judge reads: the newest results first, until ``max_chars`` of text."""
    chosen: list[Evidence] = []
    used = 0
    for item in reversed(evidence):
        text = item.text[: max(0, max_chars - used)]
        if text:
            chosen.append(Evidence(item.tool, item.url, text))
            used += len(text)
        if used >= max_chars:
            break
    return chosen


def judge_messages(question: str, answer: str, evidence: list[Evidence]) -> list[dict[str, str]]:
    """The judge's chat: our system prompt, then the question, the answer and numbered evidence."""
    blocks = "\n\n".join(evidence_block(n, e.tool, e.url, e.text) for n, e in enumerate(evidence, start=1))
    user = judge_user_message(question, answer, blocks or NO_EVIDENCE)
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_judgement(reply: str, evidence: list[Evidence], retrieved: set[str]) -> Judgement:
    """Read the judge's reply. ``sources`` are numbers of ``evidence`` blocks; ``urls`` (an older
    reply shape) are kept only when the run retrieved them."""
    text = re.sub(r"<think>.*?(?:</think>|$)", "", reply, flags=re.DOTALL).strip()
    data: Any = None
    for pattern in (_FENCED, _OBJECT):
        match = pattern.search(text)
        if match:
            try:
                data = json.loads(match.group(1) if pattern is _FENCED else match.group(0))
                break
            except json.JSONDecodeError:
                continue
    if isinstance(data, dict) and isinstance(data.get("supported"), bool):
        urls = [evidence[n - 1].url for n in _numbers(data.get("sources")) if 0 < n <= len(evidence)]
        urls += [u for u in data.get("urls") or [] if isinstance(u, str) and u in retrieved]
        return Judgement(
            "supported" if data["supported"] else "unsupported",
            reason=str(data.get("reason") or "").strip(),
            missing=str(data.get("missing") or "").strip(),
            urls=list(dict.fromkeys(u for u in urls if u)),
            decided_by=BY_JUDGE,
        )
    lowered = text.lower()
    if "unsupported" in lowered or "not supported" in lowered:
        return Judgement("unsupported", reason=text[:300], decided_by=BY_JUDGE)
    if "supported" in lowered:
        return Judgement("supported", reason=text[:300], decided_by=BY_JUDGE)
    return Judgement("unverified", reason="the judge's reply could not be read", decided_by=BY_JUDGE)


def _numbers(value: Any) -> list[int]:
    items = value if isinstance(value, list) else [value]
    return [int(v) for v in items if isinstance(v, int | float | str) and str(v).strip().isdigit()]

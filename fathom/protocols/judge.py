"""How the verify node asks a chat model whether the evidence supports an answer, and reads the verdict.

Our own prompt (in :mod:`fathom.protocols.prompts.judge`); the reply is a small JSON object.
Replies that are not clean JSON are still read (a fenced block, or SUPPORTED / UNSUPPORTED words),
and anything unreadable is "unverified".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AnyMessage, ToolMessage

from fathom.protocols.prompts.judge import JUDGE_SYSTEM_PROMPT, NO_EVIDENCE, judge_user_message

Verdict = Literal["supported", "unsupported", "unverified"]
EVIDENCE_CHARS = 12_000


@dataclass
class Judgement:
    verdict: Verdict
    reason: str = ""
    missing: str = ""
    urls: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "missing": self.missing, "urls": self.urls}


def evidence_text(messages: list[AnyMessage], max_chars: int = EVIDENCE_CHARS) -> str:
    """The successful tool results, newest first, until ``max_chars``: what the judge reads."""
    parts: list[str] = []
    used = 0
    for message in reversed(messages):
        if not isinstance(message, ToolMessage) or message.status == "error":
            continue
        text = str(message.content).strip()
        if used + len(text) > max_chars:
            text = text[: max(0, max_chars - used)]
        if text:
            parts.append(f"[{message.name}] {text}")
            used += len(text)
        if used >= max_chars:
            break
    return "\n\n---\n\n".join(parts) or NO_EVIDENCE


def judge_messages(question: str, answer: str, evidence: str) -> list[dict[str, str]]:
    user = judge_user_message(question, answer, evidence)
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_judgement(reply: str, retrieved: set[str]) -> Judgement:
    """Read the judge's reply; URLs not retrieved in the run are dropped."""
    text = re.sub(r"<think>.*?</think>", "", reply, flags=re.DOTALL).strip()
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
        urls = [u for u in data.get("urls") or [] if isinstance(u, str) and u in retrieved]
        return Judgement(
            "supported" if data["supported"] else "unsupported",
            reason=str(data.get("reason") or "").strip(),
            missing=str(data.get("missing") or "").strip(),
            urls=urls,
        )
    lowered = text.lower()
    if "unsupported" in lowered or "not supported" in lowered:
        return Judgement("unsupported", reason=text[:300])
    if "supported" in lowered:
        return Judgement("supported", reason=text[:300])
    return Judgement("unverified", reason="the judge's reply could not be read")

"""Goal-conditioned evidence: what in a page serves the research goal, in the layout the model reads.

Two paths, one result type:

* extractive (no query LLM, or whenever the LLM path fails): the passages that best match the goal
  (BM25, see :mod:`fathom.tools.passages`), in document order, up to a character budget, saying
  plainly when the page was not shown whole;
* query LLM: the best passages go to a chat model with the instructions it is handed (ours are in
  :mod:`fathom.protocols.prompts.evidence`, passed in where the extractor is built: this layer does
  not import protocols); its Rationale / Evidence / Summary reply is parsed and checked, and
  anything unusable falls back to the extractive path. The model never sees an extraction error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fathom.tools.extract import Document
from fathom.tools.passages import Passage, rank_passages, split_passages

log = logging.getLogger(__name__)

HEADER = "The useful information in {url} for goal \u201c{goal}\u201d:\n\n"
LLM_INPUT_CHARS = 15_000  # what the extractor reads of a page (upstream clip, but best passages)
LLM_MAX_TOKENS = 1024
# The passage layout's version, part of the cache identity: evidence cached before passages kept
# their labels (terms, header rows, lead-ins) is not served again as if it had them.
LAYOUT = 2


class QueryLLM(Protocol):
    """Anything with ``ChatClient.complete``'s shape; the result needs a ``content`` string."""

    async def complete(
        self, messages: list[dict[str, Any]], temperature: float = 0.0, max_tokens: int = 1024
    ) -> Any: ...


@dataclass(frozen=True)
class Evidence:
    """The text the model reads, which path made it and, after a fallback, why."""

    text: str
    method: Literal["llm", "extractive"]
    fallback_reason: str | None = None


class EvidenceExtractor:
    """Makes :class:`Evidence` for a document and a goal (see the module docstring)."""

    def __init__(
        self,
        *,
        max_chars: int = 6000,
        llm: QueryLLM | None = None,
        llm_input_chars: int = LLM_INPUT_CHARS,
        llm_max_tokens: int = LLM_MAX_TOKENS,
        system_prompt: str = "",
        user_prompt: str = "",
    ) -> None:
        if llm is not None and not (system_prompt.strip() and user_prompt.strip()):
            raise ValueError("a query LLM needs its system and user prompts (see fathom.protocols.prompts.evidence)")
        self.max_chars = max_chars
        self.llm = llm
        self.llm_input_chars = llm_input_chars
        self.llm_max_tokens = llm_max_tokens
        self.system_prompt = system_prompt
        self.user_prompt = user_prompt

    @property
    def identity(self) -> str:
        """What decides this extractor's output (path, layout, model, budgets, prompts): a cache-key part."""
        if self.llm is None:
            return f"extractive/{self.max_chars}/v{LAYOUT}"
        model = getattr(self.llm, "model", "") or type(self.llm).__name__
        where = getattr(self.llm, "base_url", "")
        prompts = hashlib.sha256(f"{self.system_prompt}\0{self.user_prompt}".encode()).hexdigest()[:16]
        return (f"llm/{self.max_chars}/{self.llm_input_chars}/{self.llm_max_tokens}/v{LAYOUT}/{prompts}/"
                f"{model}@{where}")[:255]

    async def extract(self, doc: Document, goal: str, *, url: str, timeout_s: float | None = None) -> Evidence:
        """Evidence for ``goal`` from ``doc``; ``url`` is the one shown in the header (as asked for).

        ``timeout_s`` bounds the query-LLM call; when it runs out the extractive path answers.
        """
        # Splitting and ranking a large page is CPU work: off the event loop, like its parsing.
        if self.llm is None:
            return Evidence(await asyncio.to_thread(self.extractive, doc, goal, url=url), "extractive")
        try:
            async with asyncio.timeout(timeout_s):
                messages = await asyncio.to_thread(self._messages, doc, goal)
                reply = await self.llm.complete(messages, temperature=0.0, max_tokens=self.llm_max_tokens)
            sections = parse_sections(_content(reply))
            problem = validate_sections(sections)
        except TimeoutError:
            problem = "the query LLM did not answer in time" + (f" ({timeout_s:.0f} s)" if timeout_s else "")
        except Exception as exc:  # any client failure: the page is still worth reading
            problem = f"the query LLM failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        if problem:
            log.warning("evidence for %s: %s; using extractive passages", url, problem)
            return Evidence(await asyncio.to_thread(self.extractive, doc, goal, url=url), "extractive", problem)
        return Evidence(format_llm_evidence(url, goal, sections), "llm")

    def _messages(self, doc: Document, goal: str) -> list[dict[str, Any]]:
        body, _ = select_passages(doc, goal, self.llm_input_chars)
        # One pass over the template, so braces inside the page or the goal are never expanded.
        values = {"webpage_content": body, "goal": goal}
        user = re.sub(r"\{(webpage_content|goal)\}", lambda m: values[m.group(1)], self.user_prompt)
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    def extractive(self, doc: Document, goal: str, *, url: str) -> str:
        """The extractive layout: header, ``Evidence (extracted passages):``, passages, and any note."""
        body, note = select_passages(doc, goal, self.max_chars)
        text = HEADER.format(url=url, goal=goal) + "Evidence (extracted passages):\n" + body
        return text + (f"\n\n{note}" if note else "")


# ---- passage selection ----------------------------------------------------------------------

GAP = "\n\n[\u2026]\n\n"


def select_passages(doc: Document, goal: str, max_chars: int) -> tuple[str, str | None]:
    """The best passages for ``goal`` in document order within ``max_chars``, and a truncation note.

    The note is ``None`` only when the whole page is shown; otherwise it says what was left out.
    """
    passages = split_passages(doc.text, target_chars=min(800, max_chars // 3),
                              max_chars=max(200, min(1200, max_chars // 2)))
    cut_note = "the page was larger than the download limit, so only its beginning was read"
    if not passages:
        return "", None
    if sum(len(_render(p)) + len(GAP) for p in passages) <= max_chars:
        return _join(passages), (f"[note: {cut_note}]" if doc.truncated else None)

    scores = rank_passages(passages, goal)
    matched = any(s > 0 for s in scores)
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i)) if matched else range(len(passages))
    chosen: list[Passage] = []
    used = 0
    for i in order:
        if matched and scores[i] <= 0:
            break  # unrelated passages would only crowd the context
        cost = len(_render(passages[i])) + len(GAP)
        if used + cost <= max_chars:
            chosen.append(passages[i])
            used += cost
    if not chosen:  # even the best passage is over budget: show its beginning
        best = passages[order[0] if matched else 0]
        room = max(0, max_chars - 100 - len(best.label))
        chosen = [Passage(best.index, best.heading, best.text[:room] + " \u2026", best.label)]
    chosen.sort(key=lambda p: p.index)
    shown = sum(len(p.text) for p in chosen)
    why = "chosen for relevance to the goal" if matched else "no passage matched the goal, so the start of the page is shown"
    note = (f"[truncated: {len(chosen)} of {len(passages)} passages shown ({shown:,} of "
            f"{len(doc.text):,} characters), {why}")
    note += f"; {cut_note}]" if doc.truncated else "]"
    return _join(chosen), note


def _render(p: Passage, *, section: bool = True, label: bool = True) -> str:
    """A passage as the model reads it: its section, the lines it belongs under, its text."""
    text = f"{p.label}\n{p.text}" if label and p.label else p.text
    return f"[Section: {p.heading}]\n{text}" if section and p.heading else text


def _join(passages: list[Passage]) -> str:
    """Passages in order; one that follows the previous one directly needs neither its section
    (when unchanged) nor its label (the lines it belongs under were shown above it)."""
    parts: list[str] = []
    previous: Passage | None = None
    for p in passages:
        follows = previous is not None and p.index == previous.index + 1
        if previous is not None:
            parts.append("\n\n" if follows else GAP)
        same_section = follows and previous is not None and previous.heading == p.heading
        parts.append(_render(p, section=not same_section, label=not follows))
        previous = p
    return "".join(parts)


# ---- the query-LLM reply --------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_LABEL = re.compile(
    r"^\s*(?:\d+[.)]\s*)?[#>*_\s-]*(rationale|rational|evidence|summary)[*_\s]*(:)?[*_]*\s*(.*)$",
    re.IGNORECASE,
)
_NOTHING = frozenset(
    {"", "none", "n/a", "na", "null", "nil", "nothing", "not found", "(not found)", "none found",
     "no evidence", "no relevant evidence", "no relevant information", "not applicable", "unknown",
     "...", "…", "-"}
)


def _content(reply: Any) -> str:
    content = getattr(reply, "content", reply)
    return content if isinstance(content, str) else ""


def parse_sections(reply: str) -> dict[str, str]:
    """``{"rationale", "evidence", "summary"}`` found in a reply (bold labels, ``Rational``, any case).

    Only our three labels start a section, so a ``Source:`` line inside one does not cut it short.
    """
    reply = _THINK.sub("", reply)
    if "</think>" in reply.lower():  # a reasoning preamble without its opening tag
        reply = reply[reply.lower().rfind("</think>") + len("</think>"):]
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in reply.splitlines():
        match = _LABEL.match(line)
        if match and (match.group(2) or not match.group(3).strip()):
            label = match.group(1).lower()
            label = "rationale" if label.startswith("rational") else label
            current = sections.setdefault(label, [])
            rest = match.group(3).strip()
            if rest:
                current.append(rest)
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v).strip().strip("*").strip() for k, v in sections.items()}


def _says_something(text: str) -> bool:
    core = re.sub(r"^[\s\-*•\d.)]+", "", text).strip().strip(".").strip().lower()
    return core not in _NOTHING and len(core) >= 3


def validate_sections(sections: dict[str, str]) -> str | None:
    """Why the reply is unusable (``None`` if usable): it must carry evidence or a summary."""
    if not sections:
        return "the query LLM's reply had no Rationale/Evidence/Summary sections"
    if not (_says_something(sections.get("evidence", "")) or _says_something(sections.get("summary", ""))):
        return "the query LLM's reply had neither evidence nor a summary"
    return None


def format_llm_evidence(url: str, goal: str, sections: dict[str, str]) -> str:
    """The query-LLM layout: header, then Rationale, Evidence and Summary sections."""
    def part(name: str, empty: str) -> str:
        value = sections.get(name, "")
        return value if _says_something(value) else empty

    return (
        HEADER.format(url=url, goal=goal)
        + f"Rationale:\n{part('rationale', '(none given)')}\n\n"
        + f"Evidence:\n{part('evidence', '(none quoted)')}\n\n"
        + f"Summary:\n{part('summary', '(none given)')}"
    )

"""Judges: does a model's answer to a benchmark question match the gold answer?

Kinds (:func:`judge_for`):

* ``exact``: equal after normalising (NFKD without accents, casefolded, punctuation stripped,
  English articles dropped, a ``\\boxed{…}`` wrapper unwrapped on either side);
* ``f1``: token F1 of the normalised texts at least 0.8;
* ``mcq``: the option letter (A–J) the answer chose equals the gold letter (``"b) Only two"`` is
  ``B``); a gold that is not an option letter (HLE's free-text rows) is compared as ``exact``;
* ``numeric``: equal as numbers (commas and ``\\boxed{}`` removed); a gold that is not a number is
  compared as ``exact``;
* ``llm``: a chat model grades the answer with our prompt
  (:mod:`fathom.protocols.prompts.eval`) or a user's grader text; temperature 0; retried with
  backoff (:mod:`fathom.retry`); a failure after the retries is ``judge_error``, never
  ``incorrect``; verdicts are cached through a :class:`JudgementCache` when one is given;
* ``auto``: by data set name (multiple choice → ``mcq``, ``aime25`` → ``numeric``), otherwise
  ``llm`` with a chat client, else ``exact``.

An empty or missing answer is ``not_attempted`` for every judge, and no model is asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from fathom.errors import ConfigError, one_line
from fathom.models.base import ModelError, ModelUnavailableError
from fathom.protocols.base import find_boxed
from fathom.protocols.prompts.eval import EVAL_JUDGE_SYSTEM_PROMPT, EVAL_JUDGE_USER_TEMPLATE
from fathom.retry import RetriesExhausted, RetryPolicy, Transient, call_with_retries

if TYPE_CHECKING:
    from fathom.models.chat import ChatClient

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "KINDS", "ExactJudge", "F1Judge", "Judge", "Judgement", "JudgementCache", "LLMJudge", "MCQJudge",
    "NumericJudge", "Verdict", "cache_key", "judge_for", "normalize", "option_letter", "parse_number",
    "parse_verdict",
]

Verdict = Literal["correct", "incorrect", "not_attempted", "judge_error"]
KINDS = ("auto", "exact", "f1", "mcq", "numeric", "llm")
MCQ_DATASETS = frozenset({"gpqa-diamond", "medqa", "pubmedqa", "upsc_2025", "medxpertqa", "hle"})
NUMERIC_DATASETS = frozenset({"aime25"})
F1_THRESHOLD = 0.8
LLM_MAX_TOKENS = 256
LLM_RETRY = RetryPolicy(attempts=3, base_delay_s=1.0, max_delay_s=30.0)
REASON_CHARS = 300
SHOWN_CHARS = 60


@dataclass(frozen=True)
class Judgement:
    """A verdict, why (one line), and which judge decided (its :attr:`Judge.name`)."""

    verdict: Verdict
    reason: str = ""
    judge: str = ""


class Judge(Protocol):
    """Grades one answer. ``name`` is a stable identity (kind, model, prompt digest): part of the
    judgement cache key, and recorded with each verdict."""

    name: str

    async def __call__(self, question: str, gold: str, answer: str | None) -> Judgement: ...


class JudgementCache(Protocol):
    """Where verdicts are kept between runs (the store implements it); keys come from :func:`cache_key`."""

    async def get(self, key: str) -> Judgement | None: ...

    async def put(self, key: str, judgement: Judgement) -> None: ...


def cache_key(judge_name: str, question: str, gold: str, answer: str) -> str:
    """The sha256 (hex) of the judge's name and the three texts, unambiguously joined."""
    payload = json.dumps([judge_name, question, gold, answer], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _blank(answer: str | None) -> bool:
    return answer is None or not answer.strip()


def _shown(text: str) -> str:
    return one_line(text, SHOWN_CHARS)


# ---- normalising -----------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCT = {ord(c): " " for c in string.punctuation}


def unboxed(text: str) -> str:
    """The content of the last ``\\boxed{…}`` in ``text``, else ``text``."""
    inner = find_boxed(text)
    return text if inner is None else inner


def normalize(text: str) -> str:
    """``text`` for comparison: unboxed, NFKD without combining marks, casefolded, punctuation
    (ASCII and Unicode) turned to spaces, English articles dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKD", unboxed(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text.translate(_PUNCT))
    return " ".join(_ARTICLES.sub(" ", text).split())


@dataclass(frozen=True)
class ExactJudge:
    """Equal after :func:`normalize`."""

    name: str = "exact"

    async def __call__(self, question: str, gold: str, answer: str | None) -> Judgement:
        if answer is None or _blank(answer):
            return Judgement("not_attempted", "no answer", self.name)
        return self.judge(gold, answer)

    def judge(self, gold: str, answer: str) -> Judgement:
        got, want = normalize(answer), normalize(gold)
        if not got:
            return Judgement("not_attempted", "nothing left of the answer once normalised", self.name)
        if got == want:
            return Judgement("correct", "equal once normalised", self.name)
        return Judgement("incorrect", f"{_shown(got)!r} is not {_shown(want)!r}", self.name)


def token_f1(gold: str, answer: str) -> float:
    """SQuAD-style token F1 of the normalised texts."""
    want, got = normalize(gold).split(), normalize(answer).split()
    if not want or not got:
        return float(want == got)
    common = sum((Counter(want) & Counter(got)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class F1Judge:
    """Token F1 of the normalised texts at least ``threshold``."""

    threshold: float = F1_THRESHOLD
    name: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"the F1 threshold must be in (0, 1], not {self.threshold}")
        object.__setattr__(self, "name", f"f1@{self.threshold:g}")

    async def __call__(self, question: str, gold: str, answer: str | None) -> Judgement:
        if answer is None or _blank(answer):
            return Judgement("not_attempted", "no answer", self.name)
        score = token_f1(gold, answer)
        verdict: Verdict = "correct" if score >= self.threshold else "incorrect"
        return Judgement(verdict, f"token F1 {score:.2f}", self.name)


# ---- multiple choice ----------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJ"  # MedXpertQA has ten options
_L = f"[{LETTERS}]"
# the whole text is the letter: "B", "(B)", "B.", "[b]", "Option B", "Answer: (b)"
_ONLY = re.compile(rf"^(?:(?:the\s+)?(?:final\s+)?(?:answer|option|choice)\s*(?:is)?\s*[:=]?\s*)?"
                   rf"[(\[]?({_L})[)\]]?[.:]?$", re.IGNORECASE)
# the text starts with a labelled option: "b) Only two", "(C) 12 days", "A. Paris", "D: none"
_LEADING = re.compile(rf"^[(\[]?({_L})(?:[)\]]|[.:](?=\s))\s*\S", re.IGNORECASE)
# an upper-case letter announced as the answer, anywhere: "The answer is B.", "correct option: (C)"
_STATED = re.compile(rf"\b(?:answer|option|choice)\b(?:\s+(?:is|would\s+be|=))?\s*:?\s*\(?({_L})\b(?![-'’])")
# a parenthesised upper-case letter anywhere: "so we pick (D)"
_PAREN = re.compile(rf"\(({_L})\)")


def option_letter(text: str) -> str | None:
    """The option letter ``text`` chose, upper-cased, or ``None`` when it names none clearly.

    Tried in order on the unboxed, stripped text: the whole text is a letter (optionally labelled
    and bracketed); it starts with a labelled option (``b) …``); the last upper-case letter
    announced as the answer; the last parenthesised upper-case letter.
    """
    body = unboxed(text).strip().strip("*").strip()
    body = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", body)  # \boxed{\text{B}}
    for pattern in (_ONLY, _LEADING):
        found = pattern.match(body)
        if found:
            return found.group(1).upper()
    for pattern in (_STATED, _PAREN):
        hits = pattern.findall(body)
        if hits:
            return hits[-1].upper()
    return None


@dataclass(frozen=True)
class MCQJudge:
    """The option letters equal; a gold that is no option letter falls back to :class:`ExactJudge`."""

    name: str = "mcq"

    async def __call__(self, question: str, gold: str, answer: str | None) -> Judgement:
        if answer is None or _blank(answer):
            return Judgement("not_attempted", "no answer", self.name)
        want = _gold_letter(gold)
        if want is None:
            return ExactJudge(self.name).judge(gold, answer)
        got = option_letter(answer)
        if got is None:
            return Judgement("incorrect", f"no option letter in {_shown(answer)!r}", self.name)
        if got == want:
            return Judgement("correct", f"chose {got}", self.name)
        return Judgement("incorrect", f"chose {got}, gold {want}", self.name)


def _gold_letter(gold: str) -> str | None:
    body = unboxed(gold).strip()
    found = _ONLY.match(body) or _LEADING.match(body)
    return found.group(1).upper() if found else None


# ---- numbers ----------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_number(text: str) -> Decimal | None:
    """The number ``text`` gives: the whole unboxed text without commas, ``$`` and spaces, else
    the last number written in it; ``None`` when there is none."""
    body = unboxed(text).replace(",", "").replace("\\!", "").replace("−", "-")
    body = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", body)
    whole = body.strip().strip("$").strip().rstrip(".").replace(" ", "")
    found = _NUMBER.findall(body)
    candidates = ([whole] if _NUMBER.fullmatch(whole) else []) + found[-1:]
    for candidate in candidates:
        try:
            return Decimal(candidate)
        except InvalidOperation:
            continue
    return None


@dataclass(frozen=True)
class NumericJudge:
    """Equal as numbers; a gold that is no number falls back to :class:`ExactJudge`."""

    name: str = "numeric"

    async def __call__(self, question: str, gold: str, answer: str | None) -> Judgement:
        if answer is None or _blank(answer):
            return Judgement("not_attempted", "no answer", self.name)
        want = parse_number(gold)
        if want is None:
            return ExactJudge(self.name).judge(gold, answer)
        got = parse_number(answer)
        if got is None:
            return Judgement("incorrect", f"no number in {_shown(answer)!r}", self.name)
        if got == want:
            return Judgement("correct", f"{got} equals {want}", self.name)
        return Judgement("incorrect", f"{got} is not {want}", self.name)


# ---- the LLM grader ---------------------------------------------------------------------------

_SLOT = re.compile(r"\{(question|target|gold|predicted_answer|answer)\}")
_LABEL = re.compile(r"(?<![A-Za-z_])(not[\s_-]*attempted|incorrect|correct|unknown)(?![A-Za-z_])", re.IGNORECASE)
_LETTER_GRADE = {"A": "correct", "B": "incorrect", "C": "not_attempted"}  # SimpleQA's grader


def parse_verdict(reply: str) -> tuple[Verdict, str] | None:
    """The verdict and one-line reason of a grader's reply, or ``None`` when it has no label.

    The first label wins (``CORRECT``, ``INCORRECT``, ``NOT_ATTEMPTED``, upstream's ``unknown``
    meaning not attempted); a reply that is a single letter A/B/C is SimpleQA's grade.
    """
    text = re.sub(r"<think>.*?</think>", "", reply, flags=re.DOTALL).strip().strip("*#` ").strip()
    if text.upper() in _LETTER_GRADE:
        return _LETTER_GRADE[text.upper()], ""  # type: ignore[return-value]
    found = _LABEL.search(text)
    if found is None:
        return None
    word = re.sub(r"[\s_-]+", "_", found.group(1).lower())
    verdict: Verdict = "not_attempted" if word in ("not_attempted", "unknown") else word  # type: ignore[assignment]
    rest = text[found.end():].lstrip(" *.:-–—\n")
    return verdict, one_line(rest, REASON_CHARS)


def fill_grader(template: str, question: str, gold: str, answer: str) -> str:
    """``template`` with its slots filled in one pass: ``{question}``, ``{target}``/``{gold}``,
    ``{predicted_answer}``/``{answer}`` (the texts' own braces are never expanded)."""
    values = {"question": question, "target": gold, "gold": gold, "predicted_answer": answer, "answer": answer}
    return _SLOT.sub(lambda m: values[m.group(1)], template)


def check_grader(prompt: str) -> None:
    """Raise :class:`ConfigError` unless a grader text has a question, a gold and an answer slot."""
    slots = set(_SLOT.findall(prompt))
    missing = [label for label, names in (("{question}", {"question"}), ("{target} or {gold}", {"target", "gold"}),
                                          ("{predicted_answer} or {answer}", {"predicted_answer", "answer"}))
               if not slots & names]
    if missing:
        raise ConfigError(f"the grader prompt has no {', no '.join(missing)} slot")


class LLMJudge:
    """A chat model grades the answer. ``prompt``: a user's grader text sent as the only (user)
    message, else our system prompt and user template. ``name`` is ``llm:<model>@<sha256[:12] of
    the prompt text>``, so a changed prompt never reuses cached verdicts."""

    def __init__(
        self,
        chat: ChatClient,
        *,
        prompt: str | None = None,
        cache: JudgementCache | None = None,
        retry: RetryPolicy = LLM_RETRY,
        max_tokens: int = LLM_MAX_TOKENS,
    ) -> None:
        if prompt is not None:
            check_grader(prompt)
        self.chat = chat
        self.prompt = prompt
        self.cache = cache
        self.retry = retry
        self.max_tokens = max_tokens
        text = prompt if prompt is not None else EVAL_JUDGE_SYSTEM_PROMPT + "\n\n" + EVAL_JUDGE_USER_TEMPLATE
        self.prompt_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def name(self) -> str:
        """``llm:<model>@<prompt sha256[:12]>``; the model is the server's URL until it is known
        (:meth:`resolve`; every call resolves it before the cache is consulted)."""
        return f"llm:{self.chat.model or self.chat.base_url}@{self.prompt_sha256[:12]}"

    async def resolve(self) -> str:
        """Learn the model's name from the server when it was not configured; return :attr:`name`.

        Raises:
            ModelError: the server cannot say (after the retries).
        """
        await self._retrying(self.chat.resolve_model)
        return self.name

    def messages(self, question: str, gold: str, answer: str) -> list[dict[str, str]]:
        if self.prompt is not None:
            return [{"role": "user", "content": fill_grader(self.prompt, question, gold, answer)}]
        user = fill_grader(EVAL_JUDGE_USER_TEMPLATE, question, gold, answer)
        return [{"role": "system", "content": EVAL_JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]

    async def __call__(self, question: str, gold: str, answer: str | None) -> Judgement:
        if answer is None or _blank(answer):
            return Judgement("not_attempted", "no answer", self.name)
        try:
            await self.resolve()
        except Exception as exc:
            return self._failed(exc)
        key = cache_key(self.name, question, gold, answer)
        if self.cache is not None:
            try:
                hit = await self.cache.get(key)
            except Exception as exc:  # a cache is an optimisation: grade anyway
                log.warning("judgement cache lookup failed (%s); grading again", one_line(exc, 200))
                hit = None
            if hit is not None:
                return hit
        judgement = await self._grade(question, gold, answer)
        if self.cache is not None and judgement.verdict != "judge_error":
            try:
                await self.cache.put(key, judgement)
            except Exception as exc:
                log.warning("judgement cache store failed: %s", one_line(exc, 200))
        return judgement

    async def _retrying(self, make: Callable[[], Awaitable[T]]) -> T:
        """``make()`` under :attr:`retry`: an unreachable server (the client's own retries spent)
        is tried again after a backoff; any other failure propagates at once."""

        async def attempt() -> T:
            try:
                return await make()
            except ModelUnavailableError as exc:
                raise Transient(str(exc)) from None

        return await call_with_retries(attempt, self.retry)

    async def _grade(self, question: str, gold: str, answer: str) -> Judgement:
        messages = self.messages(question, gold, answer)
        try:
            result = await self._retrying(
                lambda: self.chat.complete(messages, temperature=0.0, max_tokens=self.max_tokens))
        except Exception as exc:  # never let a grader fault count as a wrong answer
            return self._failed(exc)
        parsed = parse_verdict(result.content)
        if parsed is None:
            return self._error(f"judge reply has no verdict: {result.content!r}")
        verdict, reason = parsed
        return Judgement(verdict, reason, self.name)

    def _failed(self, exc: Exception) -> Judgement:
        if isinstance(exc, RetriesExhausted):
            return self._error(f"judge failed after {exc.attempts} attempts: {exc.last}")
        if isinstance(exc, ModelError):
            return self._error(f"judge failed: {exc}")
        return self._error(f"judge failed: {type(exc).__name__}: {exc}")

    def _error(self, reason: str) -> Judgement:
        return Judgement("judge_error", one_line(reason, REASON_CHARS), self.name)


# ---- choosing -------------------------------------------------------------------------------


def judge_for(
    kind: str,
    *,
    dataset: str | None = None,
    chat: ChatClient | None = None,
    prompt: str | None = None,
    cache: JudgementCache | None = None,
    retry: RetryPolicy | None = None,
) -> Judge:
    """The judge of ``kind`` (one of :data:`KINDS`); ``auto`` decides by ``dataset``'s name.

    ``prompt`` (a grader text) and ``cache`` serve the ``llm`` judge, which needs ``chat``;
    ``retry`` overrides its retry policy.

    Raises:
        ConfigError: an unknown kind, ``llm`` without a chat client, a grader text without its
            slots, or a grader text for a judge that asks no model.
    """
    kind = kind.strip().lower()
    if kind == "auto":
        name = (dataset or "").strip().lower().removesuffix(".jsonl")
        if name in MCQ_DATASETS:
            kind = "mcq"
        elif name in NUMERIC_DATASETS:
            kind = "numeric"
        else:
            kind = "llm" if chat is not None else "exact"
        if prompt is not None and kind != "llm":
            raise ConfigError(
                f"a grader prompt needs the llm judge, but data set {name or '?'} is judged {kind}: "
                "choose the llm judge"
            )
    if kind == "llm":
        if chat is None:
            raise ConfigError("the llm judge needs a chat model (a judge model setting)")
        return LLMJudge(chat, prompt=prompt, cache=cache, retry=retry or LLM_RETRY)
    simple: dict[str, Judge] = {"exact": ExactJudge(), "f1": F1Judge(), "mcq": MCQJudge(), "numeric": NumericJudge()}
    if kind not in simple:
        raise ConfigError(f"unknown judge {kind!r}: the judges are {', '.join(KINDS)}")
    if prompt is not None:
        raise ConfigError(f"a grader prompt needs the llm judge, not {kind}")
    return simple[kind]

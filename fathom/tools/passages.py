"""Split a document into passages and rank them against a goal with BM25.

A passage is about a paragraph (or a few short ones), and it remembers the headings it sits
under, so a passage deep in "History > Founding" still matches a goal about the founding.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"\w+", re.UNICODE)
_VOWEL = re.compile(r"[aeiouy]")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no
    nor not now of off on once only or other our out over own same she should so some such than
    that the their them then there these they this those through to too under until up very was
    we were what when where which while who whom why will with would you your yours
    find information details page goal extract identify determine tell give list show look
    including related regarding please""".split()
)
HEADING_BOOST = 0.5  # per goal term found in the passage's headings


@dataclass(frozen=True)
class Passage:
    """A contiguous piece of a document; ``index`` is its position, ``heading`` its section path."""

    index: int
    heading: str
    text: str


def tokenize(text: str) -> list[str]:
    """Lower-cased word stems without stopwords: what BM25 counts."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


def query_terms(text: str) -> list[str]:
    """The distinct lower-cased words of a query without stopwords, unstemmed, in order: what a
    full-text engine with its own stemmer should be asked for."""
    return list(dict.fromkeys(w for w in re.findall(r"[^\W_]+", text.lower()) if w not in _STOPWORDS))


@functools.lru_cache(maxsize=65_536)  # page words repeat: each is stemmed once per process
def _stem(word: str) -> str:
    """A light English stemmer, Porter-style suffix stripping without its full rule set.

    Enough to meet a goal's words in a page's other forms: plurals ("bridges"/"bridge"), verb
    endings with their doubled consonants ("cancelling"/"cancelled"/"cancel", "stopped"/"stop"),
    a silent final e ("closed"/"close"), -ation/-ate ("cancellation", "translated"/"translate").
    Words that are not plain ASCII letters only lose a plural s.
    """
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith(("sses", "ches", "shes", "xes", "zes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if not (word.isascii() and word.isalpha()):
        return word
    derived = word.endswith(("ate", "ation"))  # candidates for the -ate rule below
    if len(word) > 4 and word.endswith("ied"):
        word = word[:-3] + "y"
    elif len(word) > 5 and word.endswith("ing") and _VOWEL.search(word[:-3]):
        word = _undouble(word[:-3])
        derived = word.endswith("at")
    elif len(word) > 4 and word.endswith("ed") and _VOWEL.search(word[:-2]):
        word = _undouble(word[:-2])
        derived = word.endswith("at")
    elif len(word) > 7 and word.endswith("ation"):
        word = word[:-3]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if derived and len(word) > 6 and word.endswith("at"):  # "translat(e)", "cancellat(ion)"
        word = word[:-2]
    if len(word) > 5 and word.endswith("ll"):  # "cancell" (British doubling), "install"
        word = word[:-1]
    return word


def _undouble(stem: str) -> str:
    """``stem`` without the consonant doubled before -ing/-ed ("stopp" -> "stop"); l, s and z
    stay doubled here ("fall", "miss", "buzz"): a long -ll is undoubled for every word."""
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "aeiouylsz":
        return stem[:-1]
    return stem


def split_passages(text: str, *, target_chars: int = 800, max_chars: int = 1200) -> list[Passage]:
    """Split markdown-ish text (blank-line separated blocks, ``#`` headings) into passages.

    Blocks under one heading are merged up to ``target_chars``; a block longer than ``max_chars``
    is cut at line, then sentence, boundaries (table parts repeat their header row).
    """
    passages: list[Passage] = []
    headings: list[tuple[int, str]] = []  # (level, text) from the outermost in
    current: list[str] = []

    def close() -> None:
        if current:
            path = " > ".join(text for _, text in headings)
            passages.append(Passage(len(passages), path, "\n\n".join(current)))
            current.clear()

    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block:
            continue
        level = len(block) - len(block.lstrip("#"))
        if 0 < level <= 6 and block[level:level + 1] == " " and "\n" not in block:
            close()
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, block[level:].strip()))
            continue
        for piece in _cut(block, max_chars):
            if current and sum(map(len, current)) + len(piece) > target_chars:
                close()
            current.append(piece)
    close()
    return passages


def _cut(block: str, max_chars: int) -> list[str]:
    if len(block) <= max_chars:
        return [block]
    lines = block.split("\n")
    if len(lines) > 1:
        header = lines[0] if " | " in lines[0] and all(" | " in ln for ln in lines[:3]) else None
        return _pack(lines, max_chars, "\n", header)
    sentences = _SENTENCE_END.split(block)
    if len(sentences) > 1:
        return _pack(sentences, max_chars, " ", None)
    return [block[i : i + max_chars] for i in range(0, len(block), max_chars)]


def _pack(units: list[str], max_chars: int, sep: str, header: str | None) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        if len(unit) > max_chars:  # one enormous line or sentence: cut it hard
            parts.extend(_cut(unit, max_chars) if sep == "\n" else
                         [unit[i : i + max_chars] for i in range(0, len(unit), max_chars)])
            continue
        if current and size + len(unit) + len(sep) > max_chars:
            parts.append(sep.join(current))
            current, size = ([header] if header else []), (len(header) if header else 0)
        current.append(unit)
        size += len(unit) + len(sep)
    if current and current != [header]:
        parts.append(sep.join(current))
    return parts


class BM25:
    """Okapi BM25 over a fixed list of tokenised documents."""

    def __init__(self, docs: Sequence[Sequence[str]], *, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tfs = [Counter(doc) for doc in docs]
        self.lengths = [len(doc) for doc in docs]
        self.avg_length = (sum(self.lengths) / len(docs)) if docs else 0.0
        df: Counter[str] = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(docs)
        self.idf = {term: math.log(1 + (n - f + 0.5) / (f + 0.5)) for term, f in df.items()}

    def scores(self, query: Sequence[str]) -> list[float]:
        terms = set(query)
        out: list[float] = []
        for tf, length in zip(self.tfs, self.lengths):
            norm = self.k1 * (1 - self.b + self.b * length / (self.avg_length or 1.0))
            score = 0.0
            for term in terms:
                f = tf.get(term)
                if f:
                    score += self.idf[term] * f * (self.k1 + 1) / (f + norm)
            out.append(score)
        return out


def rank_passages(passages: Sequence[Passage], goal: str) -> list[float]:
    """One relevance score per passage (same order): BM25 of its text plus a heading boost."""
    query = tokenize(goal)
    if not passages or not query:
        return [0.0] * len(passages)
    bm25 = BM25([tokenize(p.text) for p in passages])
    scores = bm25.scores(query)
    terms = set(query)
    return [score + HEADING_BOOST * len(terms & set(tokenize(p.heading))) for score, p in zip(scores, passages)]

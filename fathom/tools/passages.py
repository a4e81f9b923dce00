"""Split a document into passages and rank them against a goal with BM25.

A passage is about a paragraph (or a few short ones), and it remembers the headings it sits
under, so a passage deep in "History > Founding" still matches a goal about the founding.

It also keeps the name of what it describes when that name lies before it: its ``label`` holds
the lines its first line belongs under. Which lines those are is read off the layout that
:mod:`fathom.tools.html_text` writes (and plain text, markdown and code share): a line belongs
under the nearest line before it that is indented less (a definition's term, a code signature
above its docstring, a list item above its sub-items); list items also belong under the line
that leads into them at their own indentation (one ending in a colon), and a table's rows under
its header row (the header under the table's caption). Headings start afresh. A passage cut from
the middle of a definition, a list or a table thus still names its term, lead-in or header.
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
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)+")  # versions, dates, times, 1,412
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
LABEL_LINE_CHARS = 160  # a longer line in a label (a long lead-in paragraph) is shortened
LABEL_LINES = 4  # the outermost line and the innermost ones beyond that, for deep nesting
_ITEM = re.compile(r"(?:[-*+]|\d{1,3}[.)])\s")  # a list item's marker, after its indentation
_BLANK_LINES = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Passage:
    """A contiguous piece of a document; ``index`` is its position, ``heading`` its section path,
    ``label`` the lines before it that its first line belongs under (see the module docstring),
    one per line, "" when none."""

    index: int
    heading: str
    text: str
    label: str = ""


def tokenize(text: str) -> list[str]:
    """Lower-cased word stems without stopwords, and each compound number whole as well as in its
    parts ("11.17" also as "11.17", so version 11.17 is not any 11 and 17): what BM25 counts."""
    text = text.lower()
    tokens = [_stem(w) for w in _WORD.findall(text) if w not in _STOPWORDS]
    tokens += _NUMBER.findall(text)
    return tokens


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
    is cut at line, then sentence, boundaries. Each passage gets its heading path and its label.
    """
    passages: list[Passage] = []
    headings: list[tuple[int, str]] = []  # (level, text) from the outermost in
    outline: list[tuple[float, str]] = []  # (level, line): the lines the next line may belong under
    current: list[str] = []
    label = ""

    def close() -> None:
        if current:
            path = " > ".join(text for _, text in headings)
            passages.append(Passage(len(passages), path, "\n\n".join(current), label))
            current.clear()

    for block in _BLANK_LINES.split(text):
        block = block.lstrip("\n").rstrip()  # a block's indentation is kept: it is structure
        if not block:
            continue
        level = len(block) - len(block.lstrip("#"))
        if 0 < level <= 6 and block[level:level + 1] == " " and "\n" not in block:
            close()
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, block[level:].strip()))
            outline.clear()
            continue
        lines = block.split("\n")
        contexts = _contexts(lines, outline)
        for piece, line in _cut(block, lines, max_chars):
            if current and sum(map(len, current)) + len(piece) > target_chars:
                close()
            if not current:
                label = _label(contexts[line])
            current.append(piece)
    close()
    return passages


def _contexts(lines: list[str], outline: list[tuple[float, str]]) -> list[tuple[str, ...]]:
    """For each line of a block, the lines it belongs under; ``outline`` carries on to the next block."""
    out: list[tuple[str, ...]] = []
    for line, level in zip(lines, _levels(lines)):
        while outline and outline[-1][0] >= level:
            outline.pop()
        if level % 1 == 0.5 and outline and outline[-1][0] == level - 0.5 and not outline[-1][1].endswith(":"):
            outline.pop()  # a list item under a line of its own indentation that does not lead into it
        out.append(tuple(ln for _, ln in outline))
        outline.append((level, line))
    return out


def _levels(lines: list[str]) -> list[float]:
    """Each line's nesting level: its indentation; half a level deeper for a list item (under a
    lead-in ending in a colon) and a table row (under the header, a quarter deeper than a caption)."""
    levels: list[float] = []
    for line in lines:
        body = line.lstrip()
        indent = float(len(line) - len(body))
        levels.append(indent + 0.5 if _ITEM.match(body) else indent)
    header = 0 if " | " in lines[0] else 1
    if len(lines) > header + 1 and sum(" | " in ln for ln in lines[header : header + 3]) >= 2:
        base = levels[header] + (0.25 if header else 0.0)
        levels[header] = base
        levels[header + 1 :] = [base + 0.25] * (len(lines) - header - 1)
    return levels


def _label(context: tuple[str, ...]) -> str:
    """A passage's label from the lines its first line belongs under, long ones shortened."""
    if len(context) > LABEL_LINES:
        context = context[:1] + context[1 - LABEL_LINES :]
    return "\n".join(ln if len(ln) <= LABEL_LINE_CHARS else ln[:LABEL_LINE_CHARS].rstrip() + " \u2026"
                     for ln in context)


def _cut(block: str, lines: list[str], max_chars: int) -> list[tuple[str, int]]:
    """``block`` in pieces of at most ``max_chars``, each with the index of the line it starts in."""
    if len(block) <= max_chars:
        return [(block, 0)]
    if len(lines) == 1:
        return [(piece, 0) for piece in _cut_line(block, max_chars)]
    parts: list[tuple[str, int]] = []
    current: list[str] = []
    start = size = 0
    for i, line in enumerate(lines):
        if current and (size + len(line) + 1 > max_chars or len(line) > max_chars):
            parts.append(("\n".join(current), start))
            current, size = [], 0
        if len(line) > max_chars:  # one enormous line: cut it on its own
            parts.extend((piece, i) for piece in _cut_line(line, max_chars))
            continue
        if not current:
            start = i
        current.append(line)
        size += len(line) + 1
    if current:
        parts.append(("\n".join(current), start))
    return parts


def _cut_line(line: str, max_chars: int) -> list[str]:
    """One long line in pieces: at sentence ends, else hard."""
    sentences = _SENTENCE_END.split(line)
    if len(sentences) == 1:
        return [line[i : i + max_chars] for i in range(0, len(line), max_chars)]
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in sentences:
        if current and size + len(sentence) + 1 > max_chars:
            parts.append(" ".join(current))
            current, size = [], 0
        if len(sentence) > max_chars:
            parts.extend(sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars))
            continue
        current.append(sentence)
        size += len(sentence) + 1
    if current:
        parts.append(" ".join(current))
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
    """One relevance score per passage (same order): BM25 of its label and text plus a heading boost.

    Pairs of the goal's words that stand side by side in a passage count as terms of their own
    ("Craigmoor Tunnel" the name, not a page that says "Craigmoor" here and "tunnel" there).
    """
    query = tokenize(goal)
    if not passages or not query:
        return [0.0] * len(passages)
    pairs = set(zip(query, query[1:]))
    docs = [tokenize(f"{p.label}\n{p.text}" if p.label else p.text) for p in passages]
    if pairs:
        query = query + [f"{a} {b}" for a, b in pairs]
        docs = [doc + [f"{a} {b}" for a, b in zip(doc, doc[1:]) if (a, b) in pairs] for doc in docs]
    scores = BM25(docs).scores(query)
    terms = set(query)
    return [score + HEADING_BOOST * len(terms & set(tokenize(p.heading))) for score, p in zip(scores, passages)]

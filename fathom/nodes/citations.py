"""Mechanical citation check of a report: only URLs actually retrieved in the run survive.

The synthesizer cites with the full URL in square brackets right after a sentence
(``… in 2003. [https://example.com/page]``), sometimes several in one bracket, sometimes as a
markdown link. Each cited URL is looked up among the URLs the run retrieved: an exact match is
kept; a near miss (another spelling of the same page) is rewritten to the retrieved spelling; an
unknown URL is removed from the text. A claim left with no citation at all is marked
:data:`UNSOURCED` where its citations stood, so readers see which statements lost their source.
The model's own source list is never trusted: it is dropped and rebuilt from the citations that
remain.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, ToolMessage

from fathom.tools.base import Source
from fathom.tools.search.results import normalize_url

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

SOURCES_HEADING = "## Sources used"
NO_SOURCES = "No sources were cited."
UNSOURCED = "[unsourced]"  # the mark a claim gets where all its citations were removed

# Titles of a model-written source list (compared lower-cased, numbering and emphasis removed).
_SOURCES_TITLES = frozenset(
    {"sources used", "sources", "sources cited", "references", "reference list", "bibliography", "works cited", "citations"}
)
_HEADING = re.compile(r"^[ \t]{0,3}(#{1,6})(?:[ \t]+(.*))?$")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_URLISH_LINE = re.compile(r"^\s*$|https?://", re.IGNORECASE)

# Fenced code blocks and inline code spans: citations inside them are literal text, not citations.
# A code span closes with a run of as many backticks as opened it, and may run over a line break
# (not a blank line): CommonMark's pairing, or "[`](url)```" hides a link from the check.
_CODE = re.compile(r"(?ms)^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n.*?^[ \t]{0,3}\1[ \t]*$"
                   r"|(?<!`)(`+)(?!`)(?:[^\n]|\n(?![ \t]*\n))+?(?<!`)\2(?!`)")

# Link text with one level of nested brackets. Lengths are bounded so that a degenerate line (a
# small model repeating "[https://…" thousands of times) cannot make the scan quadratic.
# The inside of a bracketed citation group, matched loosely (bounded, nothing to backtrack
# through) and then split into URLs by split_citation_group.
# No "[" inside but an IPv6 host's: "[url[…]" is no citation of "url[…" (found by fuzzing).
CITATION_GROUP = r"https?://(?:\[[0-9A-Fa-f:.]{2,45}\])?[^\[\]\n]{0,2000}?"
# Link text may run over a line break (not a blank line), as CommonMark allows.
_LABEL = r"(?:[^\[\]\n]|\n(?![ \t]*\n)|\[[^\[\]\n]{0,500}\]){0,500}"
# A destination: <…>, or balanced parentheses (as in wiki URLs) nested up to three deep.
_PARENS = r"[^\s()]*"
for _ in range(3):
    _PARENS = rf"[^\s()]*(?:\({_PARENS}\)[^\s()]*)*"
_HREF = rf"<[^<>\n]*>|{_PARENS}"
_GAP = r"[ \t]*(?:\n[ \t]*)?"  # spaces and at most one line break: where CommonMark lets a link breathe
_LINK_TITLE = r"(?:\"[^\"]{0,500}\"|'[^']{0,500}'|\([^()]{0,500}\))"
_CITATION = re.compile(
    # A reference definition ("[r]: https://…" on its own line) makes "[text][r]" a link.
    rf"(?m:^[ ]{{0,3}}\[(?P<ref>[^\[\]\n]{{1,500}})\]:{_GAP}(?P<refhref><[^<>\n]*>|[^\s<][^\s]*)(?:{_GAP}(?<=\s){_LINK_TITLE})?[ \t]*$)"
    rf"|(?P<bang>!?)\[(?P<label>{_LABEL})\]\({_GAP}(?P<href>{_HREF}){_GAP}(?:(?<=\s){_LINK_TITLE}{_GAP})?\)"
    # An autolink of any scheme, or an e-mail address: CommonMark links them all.
    r"|<(?P<auto>[a-z][a-z0-9+.-]{1,31}:[^\s<>]*|[^\s<>@\\]+@[^\s<>@\\]+)>"
    # Not before "(": "[url[](x)" would become "[url](x)", a link to x (found by fuzzing).
    rf"|\[[ \t]*(?P<group>{CITATION_GROUP})[ \t]*\](?!\()"
    # The destination of a link whose text is too long (or odd) for the pattern above: any
    # "(…)" right after a "]" is checked on its own.
    rf"|(?<=\])\({_GAP}(?P<tail>{_HREF}){_GAP}(?:(?<=\s){_LINK_TITLE}{_GAP})?\)",
    re.IGNORECASE,
)
# What may stand between the citations of one claim: "[url1] [url2]", "[url1], [url2]".
_RUN_GAP = re.compile(r"[ \t]*[,;]?[ \t]*")
_GROUP_SPLIT = re.compile(r"\s*[,;]\s*(?=https?://)|\s+(?=https?://)", re.IGNORECASE)
_HTTP = re.compile(r"^https?://", re.IGNORECASE)
_ABSOLUTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # a URL, not "#x" or "page.html"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~])")
# What every CommonMark link needs: "](" (inline), "]:" (a reference definition) or "<" (autolink).
_LINK_SYNTAX = re.compile(r"\]\(|\]:|<")


def split_citation_group(group: str) -> list[str] | None:
    """The URLs of a bracketed citation group (``[url1, url2]``), or None if it is prose in
    brackets that happens to start with a URL."""
    pieces = _GROUP_SPLIT.split(group)
    if any(re.search(r"\s", p) or not _HTTP.match(p) for p in pieces):
        return None
    return pieces


@dataclass
class CitationResult:
    """The outcome of :func:`check_citations`: the one citation pass every rendering uses.

    ``body`` is the cleaned report without any source list; ``sources`` the cited sources that
    remain (first-cited order, retrieved spelling, with titles); ``removed`` the unknown URLs taken
    out; ``normalized`` maps each near-miss spelling to the retrieved URL it became; ``unused``
    the retrieved URLs the report never cites; ``unsourced`` how many claims lost every citation
    they had (each marked :data:`UNSOURCED` in the body).
    """

    body: str
    sources: list[Source] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    normalized: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    unsourced: int = 0

    @property
    def kept(self) -> list[str]:
        return [source["url"] for source in self.sources]

    @property
    def text(self) -> str:
        """The report as users read it: the body, then the rebuilt ``## Sources used`` list."""
        return with_sources(self.body, self.sources)

    def as_dict(self) -> dict[str, Any]:
        """JSON-primitive form for graph state (the ``citations`` channel); the body is the report."""
        return {
            "kept": len(self.sources),
            "removed": len(self.removed),
            "unused": len(self.unused),
            "unsourced": self.unsourced,
            "sources": [dict(source) for source in self.sources],
            "removed_urls": list(self.removed),
            "normalized": dict(self.normalized),
        }


def retrieved_sources(messages: Sequence[BaseMessage]) -> list[Source]:
    """Every URL the run retrieved (search hits and pages read successfully), once, in call
    order, with its best title: a page's own title wins over its search hit's.

    Read stores them on each tool result (``artifact["sources"]``); nothing is parsed from text.
    """
    found: dict[str, Source] = {}
    for message in messages:
        if not isinstance(message, ToolMessage) or message.status == "error":
            continue
        artifact = message.artifact if isinstance(message.artifact, dict) else {}
        page = message.name == "query_url"
        for source in artifact.get("sources") or []:
            url, title = str(source.get("url") or ""), str(source.get("title") or "")
            if not url:
                continue
            if url not in found or (page and title):
                found[url] = Source(url=url, title=title or found.get(url, {}).get("title", ""))
    return list(found.values())


class _Resolver:
    """Looks cited URLs up among the retrieved ones and records what happened to each."""

    def __init__(self, retrieved: list[str]) -> None:
        self.exact = set(retrieved)
        self.by_key: dict[str, str] = {}
        for url in retrieved:  # the first retrieved spelling of a page wins
            self.by_key.setdefault(normalize_url(url), url)
        self.kept: dict[str, None] = {}
        self.removed: dict[str, None] = {}
        self.normalized: dict[str, str] = {}

    def resolve(self, url: str) -> str | None:
        url = url.strip()
        found = self._lookup(url)
        if found is None:
            self.removed.setdefault(url)
            return None
        if found != url:
            self.normalized[url] = found
        self.kept.setdefault(found)
        return found

    def _lookup(self, url: str) -> str | None:
        if url in self.exact:
            return url
        if not _HTTP.match(url):
            return None  # javascript:, mailto:, relative links: never a retrieved page
        # Trailing punctuation sometimes sticks to a URL the model copied out of a sentence.
        for candidate in (url, url.rstrip(".,;:!?")):
            found = self.by_key.get(normalize_url(candidate))
            if found is not None:
                return found
        return None


def check_citations(report: str, retrieved: Sequence[Source | str]) -> CitationResult:
    """Keep citations of retrieved URLs, repair near misses, remove the rest, rebuild the sources.

    Citations are ``[url]``, ``[url1, url2]`` / ``[url1; url2]``, markdown links ``[text](url)``
    (an unknown link keeps its text) and autolinks ``<url>``. Images become their alt text.
    Citations inside code are left alone. ``retrieved`` are sources (or bare URLs, untitled).
    Where every citation of a claim is removed, :data:`UNSOURCED` takes their place.
    """
    titles = {s: "" for s in retrieved if isinstance(s, str)} | {
        s["url"]: s.get("title", "") for s in retrieved if not isinstance(s, str)
    }
    resolver = _Resolver(list(titles))
    # Lines end in "\n" only, as Markdown renderers normalise them: a "\r" must not hide a line's end.
    report = report.replace("\r\n", "\n").replace("\r", "\n")
    body, unsourced = _check_prose(strip_sources_section(report), resolver)
    for _ in range(3):
        # What a removal leaves can form a citation of its own ("[url[](x)" -> "[url](x)"): check
        # the result again until it stands (found by fuzzing; one extra pass that changes nothing
        # is the rule).
        again, marked = _check_prose(body, resolver)
        if again == body:
            break
        body, unsourced = again, unsourced + marked
    stray = _stray_links(body, resolver)
    if stray:
        body = _defused(body)
        for url in stray:  # no longer a link: reported as removed like any other
            resolver.removed.setdefault(url)
    return CitationResult(
        body=body.rstrip(),
        sources=[Source(url=url, title=titles.get(url, "")) for url in resolver.kept],
        removed=list(resolver.removed),
        normalized=resolver.normalized,
        unused=[url for url in titles if url not in resolver.kept],
        unsourced=unsourced,
    )


def _stray_links(body: str, resolver: _Resolver) -> list[str]:
    """The URLs a CommonMark renderer still links in ``body`` that the run did not retrieve
    (percent-encoding undone), in order: where the pattern's idea of code spans, fences or link
    syntax differs from the renderer's (a list item opening a fence, say), the renderer has the
    last word."""
    if not _LINK_SYNTAX.search(body):
        return []  # parsing costs ~3 µs a character; without these no link can form
    md = _commonmark()
    known = set(resolver.kept) | {md.normalizeLink(url) for url in resolver.kept}
    stray: dict[str, None] = {}
    stack = list(reversed(md.parse(body)))
    while stack:
        token = stack.pop()
        stack.extend(reversed(token.children or []))
        href = str(token.attrGet("href") or "") if token.type == "link_open" else ""
        if _ABSOLUTE.match(href) and href not in known and resolver._lookup(href) is None:
            stray.setdefault(md.normalizeLinkText(href))
    return list(stray)


@functools.cache
def _commonmark() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False})


def _defused(body: str) -> str:
    """``body`` with no link syntax left: every "](", "<scheme:" and "[label]:" escaped. The last
    resort for a report the check could not read as the renderer does; its citations stay text."""
    body = re.sub(r"\]\(", r"]\\(", body)
    body = re.sub(r"<(?=[a-z][a-z0-9+.-]{1,31}:|[^\s<>@]+@)", r"\\<", body, flags=re.IGNORECASE)
    return re.sub(r"(?m)^([ ]{0,3})\[", r"\1\\[", body)


def _check_prose(body: str, resolver: _Resolver) -> tuple[str, int]:
    """One pass of the check over the prose of ``body`` (code is left alone); the text and the
    number of claims it marked unsourced."""
    parts: list[str] = []
    unsourced = 0
    for segment, is_prose in _code_split(body):
        if is_prose:
            at_line_start = not parts or parts[-1].endswith("\n")
            segment, marked = _replace(segment, lambda m: _rewrite(m, resolver), at_line_start=at_line_start,
                                       mark_unsourced=True)
            unsourced += marked
        parts.append(segment)
    return "".join(parts), unsourced


@dataclass(frozen=True)
class _Rewritten:
    """What became of one citation-like match: its replacement text ("" removes it), and whether
    it cited something (``cited``) that is now gone entirely (``lost``)."""

    text: str
    cited: bool = False
    lost: bool = False


def _rewrite(match: re.Match[str], resolver: _Resolver) -> _Rewritten:
    """The replacement for one citation-like match."""
    if match.group("group") is not None:
        pieces = split_citation_group(match.group("group"))
        if pieces is None:
            return _Rewritten(match.group(0))
        kept = dict.fromkeys(u for u in map(resolver.resolve, pieces) if u)
        return _Rewritten(" ".join(f"[{url}]" for url in kept), cited=True, lost=not kept)
    if match.group("tail") is not None:
        href = match.group("tail").strip().removeprefix("<").removesuffix(">").strip()
        if not href:
            return _Rewritten(match.group(0))
        url = resolver.resolve(href)
        cited = bool(_HTTP.match(href))
        return _Rewritten(f"({url})" if url else "", cited=cited, lost=cited and url is None)
    if match.group("refhref") is not None:  # kept with the retrieved spelling, or the whole line goes
        href = match.group("refhref").strip().removeprefix("<").removesuffix(">").strip()
        url = resolver.resolve(href)
        return _Rewritten(f"[{match.group('ref')}]: <{url}>" if url else "")
    if match.group("auto") is not None:
        url = resolver.resolve(match.group("auto"))
        cited = bool(_HTTP.match(match.group("auto")))  # mail and other schemes go, citing nothing
        return _Rewritten(f"<{url}>" if url else "", cited=cited, lost=cited and url is None)
    # A link's text can itself hold citations ("[see [url]](url)"): check those too.
    label, _ = _replace(match.group("label"), lambda m: _rewrite(m, resolver), at_line_start=False)
    if match.group("bang"):
        return _Rewritten(label)  # images: the report is text; a remote image is not a citation
    href = match.group("href").strip()
    if href.startswith("<") and href.endswith(">"):
        href = href[1:-1].strip()
    url = resolver.resolve(href)
    if url is None:
        # Keep what the reader was told, unless the text is the unknown URL itself. Only a web
        # address cites a source: a relative or script link is merely unlinked.
        cited = bool(_HTTP.match(href))
        return _Rewritten("" if _HTTP.match(label.strip()) else label, cited=cited, lost=cited)
    return _Rewritten(f"[{label}]({url})" if label.strip() else f"[{url}]", cited=True)


def _runs(text: str) -> Iterator[list[re.Match[str]]]:
    """The citation-like matches in ``text``, grouped into runs that stand together (only spaces,
    a comma or a semicolon between them): the citations of one claim."""
    run: list[re.Match[str]] = []
    for match in _CITATION.finditer(text):
        if run and not _RUN_GAP.fullmatch(text, run[-1].end(), match.start()):
            yield run
            run = []
        run.append(match)
    if run:
        yield run


def _replace(text: str, rewrite: Callable[[re.Match[str]], _Rewritten], *, at_line_start: bool = True,
             mark_unsourced: bool = False) -> tuple[str, int]:
    """``re.sub`` that also tidies the space a removed citation leaves behind; and the number of
    claims marked unsourced.

    With ``mark_unsourced``, a run of citations (see :func:`_runs`) none of which survives is
    replaced by :data:`UNSOURCED` (after any link text it kept): ``Fact [bad].`` becomes
    ``Fact [unsourced].``. Otherwise, and for removed citations beside a kept one: ``Fact [bad].``
    becomes ``Fact.``, ``A [bad] B`` becomes ``A B``, ``(see [bad])`` becomes ``(see)``,
    ``([bad])`` disappears, ``Fact. [bad].`` keeps one full stop, and a citation alone on its line
    takes the line with it. ``at_line_start`` says whether ``text`` begins a line (it does not when
    it follows a code span).
    """
    out: list[str] = []
    pos = 0
    marked = 0
    for run in _runs(text):
        results = [rewrite(match) for match in run]
        if mark_unsourced and any(r.lost for r in results) and not any(r.cited and not r.lost for r in results):
            before, pos = text[pos : run[0].start()], run[-1].end()
            if before.rstrip(" \t").endswith("(") and text[pos : pos + 1] == ")":  # "Claim ([bad])."
                before, pos = before.rstrip(" \t")[:-1].rstrip(" \t"), pos + 1
                before += " " if before and not before.endswith("\n") else ""
            out.append(before + " ".join([r.text for r in results if r.text] + [UNSOURCED]))
            marked += 1
            continue
        if len(run) > 1 and any(r.text for r in results):  # what remains of the run, and no stray commas
            out.append(text[pos : run[0].start()] + " ".join(r.text for r in results if r.text))
            pos = run[-1].end()
            continue
        for match, result in zip(run, results):
            pos = _tidy_one(text, out, pos, match, result.text, at_line_start=at_line_start)
    out.append(text[pos:])
    return "".join(out), marked


def _tidy_one(text: str, out: list[str], pos: int, match: re.Match[str], replacement: str, *,
              at_line_start: bool) -> int:
    """Append ``text`` up to ``match`` and its ``replacement`` to ``out``, tidying the space a
    removal leaves (see :func:`_replace`); the position in ``text`` to go on from."""
    out.append(text[pos : match.start()])
    pos = match.end()
    if replacement:
        out.append(replacement)
        return pos
    _rstrip_spaces(out)
    if _last_char(out) == "(" and text[pos : pos + 1] == ")":
        _drop_last_char(out)
        pos += 1
        _rstrip_spaces(out)
    if _last_char(out) in ".!?" and _last_char(out) and text[pos : pos + 1] == ".":
        pos += 1  # "Fact. [bad]." must not become "Fact.."
    last = _last_char(out)
    if last == "\n" or (last == "" and at_line_start):  # line start: no leading space or empty line
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if text[pos : pos + 1] == "\n" and _last_char(out) == "\n":
            pos += 1
    return pos


def _last_char(out: list[str]) -> str:
    for piece in reversed(out):
        if piece:
            return piece[-1]
    return ""


def _rstrip_spaces(out: list[str]) -> None:
    for i in range(len(out) - 1, -1, -1):
        out[i] = out[i].rstrip(" \t")
        if out[i]:
            return


def _drop_last_char(out: list[str]) -> None:
    for i in range(len(out) - 1, -1, -1):
        if out[i]:
            out[i] = out[i][:-1]
            return


def _code_split(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into (segment, is_prose) pieces around code blocks and code spans."""
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for match in _CODE.finditer(text):
        if match.start() > pos:
            pieces.append((text[pos : match.start()], True))
        pieces.append((match.group(0), False))
        pos = match.end()
    if pos < len(text):
        pieces.append((text[pos:], True))
    return pieces


# ---- the source list -----------------------------------------------------------------------------


def lines_outside_code(lines: list[str]) -> Iterator[tuple[int, str]]:
    """``(number, line)`` for each Markdown line outside fenced code blocks (fence lines excluded)."""
    fence: str | None = None
    for number, line in enumerate(lines):
        opener = _FENCE.match(line)
        if opener:
            marker = opener.group(1)
            if fence is None:
                fence = marker[0] * len(marker)
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, line


def _title_key(title: str) -> str:
    title = re.sub(r"[*_`:]", "", title).strip().lower()
    return re.sub(r"^(?:\d+[.)]?|[ivx]+\.)\s*", "", title)  # "7. Sources", "IV. References"


def strip_sources_section(text: str) -> str:
    """``text`` without a model-written source list at its end.

    A ``#`` heading named Sources / Sources used / References (and similar) is cut with everything
    after it, provided only deeper headings or other source lists follow. A bold or colon-ended
    line such as ``**Sources:**`` counts as well when only URL lines follow it.
    """
    lines = text.split("\n")
    # Whether every line from i on is blank or holds a URL (one pass: a degenerate report repeats
    # such lines thousands of times, and rescanning the rest for each was quadratic).
    urlish_from = [True] * (len(lines) + 1)
    for i in range(len(lines) - 1, -1, -1):
        urlish_from[i] = urlish_from[i + 1] and bool(_URLISH_LINE.search(lines[i]))
    headings: list[tuple[int, int, bool]] = []  # (line, level, is a source list)
    for number, line in lines_outside_code(lines):
        heading = _HEADING.match(line)
        if heading:
            title = (heading.group(2) or "").rstrip(" \t#")  # closing "##" of an ATX heading
            headings.append((number, len(heading.group(1)), _title_key(title) in _SOURCES_TITLES))
        elif _is_pseudo_heading(line) and urlish_from[number + 1]:
            headings.append((number, 7, True))
    # The cut is at the first source-list heading after which every heading is deeper or another
    # source list: the shallowest other heading after each one, found in one backward pass.
    shallowest_after = [8] * (len(headings) + 1)
    for k in range(len(headings) - 1, -1, -1):
        _, level, is_sources = headings[k]
        shallowest_after[k] = shallowest_after[k + 1] if is_sources else min(level, shallowest_after[k + 1])
    for k, (number, level, is_sources) in enumerate(headings):
        if is_sources and shallowest_after[k + 1] > level:
            return "\n".join(lines[:number]).rstrip()
    return text


def _is_pseudo_heading(line: str) -> bool:
    stripped = line.strip()
    styled = stripped.startswith(("**", "__")) or stripped.endswith(":")
    return styled and _title_key(stripped) in _SOURCES_TITLES


def sources_section(sources: Sequence[Source]) -> str:
    """``## Sources used``, then one numbered line per source: its title linked to its URL (the
    bare URL when it has no title). Number ``n`` is the citation number ``[n]`` in HTML."""
    if not sources:
        return f"{SOURCES_HEADING}\n\n{NO_SOURCES}"
    return f"{SOURCES_HEADING}\n\n" + "\n".join(
        f"{n}. {source_line(source)}" for n, source in enumerate(sources, start=1)
    )


def source_line(source: Source) -> str:
    """One source as Markdown: ``[Title](URL)``, or the bare URL when it has no title."""
    title = " ".join(source.get("title", "").split())
    if not title or title == source["url"]:
        return source["url"]
    return f"[{escape_markdown(title)}](<{source['url']}>)"


def escape_markdown(text: str) -> str:
    """One line of plain text that Markdown shows literally (page titles are untrusted)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def with_sources(body: str, sources: Sequence[Source]) -> str:
    """The report as users read it: ``body`` then the ``## Sources used`` list."""
    section = sources_section(sources)
    return f"{body}\n\n{section}\n" if body else f"{section}\n"


def report_body(report: str, sources: Sequence[Source]) -> str:
    """The body of a report :func:`with_sources` made (its exact inverse; nothing is re-parsed)."""
    section = sources_section(sources)
    for tail in (f"\n\n{section}\n", f"{section}\n"):
        if report.endswith(tail):
            return report[: -len(tail)]
    return strip_sources_section(report).rstrip()  # a report from before sources had titles

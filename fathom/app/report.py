"""The deep-research report as a Markdown document and as a standalone, safe HTML page.

The report is model text, so the HTML path trusts none of it: raw HTML in the Markdown is not
parsed (it is shown as text), only ``http(s)`` links survive, images become their alt text, and a
Content-Security-Policy forbids scripts on top. Citations ``[https://…]`` become numbered links
whose numbers are the positions of their URLs in the ``Sources used`` list.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from fathom.nodes.citations import (
    CITATION_GROUP,
    check_citations,
    lines_outside_code,
    sources_section,
    split_citation_group,
    strip_sources_section,
)

PLAN_HEADING = "## Appendix: research plan"
META_HEADING = "## Run details"
_SOURCE_TITLES = frozenset({"sources used", "sources", "references"})
_HEADING = re.compile(r"^([ \t]{0,3})(#{1,6})(?=[ \t]|$)")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~])")
_CITE = re.compile(rf"\[[ \t]*({CITATION_GROUP})[ \t]*\]", re.IGNORECASE)
_SAFE_HREF = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)
_ANY_URL = re.compile(r"https?://[^\s<>]+", re.IGNORECASE)

CSS = """
body{margin:0;background:#fff;color:#1f2328;font:16px/1.6 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:52rem;margin:0 auto;padding:2rem 1.25rem 4rem}
h1,h2,h3,h4{line-height:1.25;margin:1.6em 0 .6em}
h1{font-size:1.9rem;margin-top:0}
h2{font-size:1.45rem;border-bottom:1px solid #d0d7de;padding-bottom:.25em}
a{color:#0b57d0;overflow-wrap:anywhere}
a.cite{font-size:.8em;vertical-align:super;line-height:0;text-decoration:none;margin-left:.1em}
table{border-collapse:collapse;margin:1em 0;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d7de;padding:.4em .75em;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
tr:nth-child(even) td{background:#fafbfc}
code{background:#f6f8fa;border-radius:4px;padding:.1em .3em;font-size:.9em}
pre{background:#f6f8fa;border-radius:6px;padding:1em;overflow-x:auto}
pre code{padding:0;background:none}
blockquote{margin:1em 0;padding:0 1em;color:#59636e;border-left:.25em solid #d0d7de}
ol.sources li{overflow-wrap:anywhere}
"""

# Defence in depth: even if something slipped through, the page may not run scripts or load
# anything; styles are inline and links still navigate.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"


def _escape_md(text: str) -> str:
    """One line of plain text that Markdown shows literally."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _headings(text: str) -> list[tuple[int, int]]:
    """(line number, level) of each ATX heading outside fenced code."""
    found = []
    for number, line in lines_outside_code(text.split("\n")):
        match = _HEADING.match(line)
        if match:
            found.append((number, len(match.group(2))))
    return found


def _shift_headings(text: str, min_level: int) -> str:
    """Demote headings so none is above ``min_level`` (a single leading ``#`` is just lowered)."""
    found = _headings(text)
    if not found or min(level for _, level in found) >= min_level:
        return text
    lines = text.split("\n")
    top = [n for n, level in found if level == 1]
    if min_level == 2 and len(top) == 1 and top[0] == found[0][0]:
        # The synthesizer's layout: one "# Executive Summary", then "##" sections. Flatten it.
        shifts = {top[0]: 1}
    else:
        delta = min_level - min(level for _, level in found)
        shifts = {n: delta for n, _ in found}
    for number, delta in shifts.items():
        lines[number] = _HEADING.sub(
            lambda m: m.group(1) + "#" * min(6, len(m.group(2)) + delta), lines[number], count=1  # noqa: B023 (called at once)
        )
    return "\n".join(lines)


def report_markdown(
    question: str,
    report: str,
    citable: Sequence[str],
    *,
    plan: str | None = None,
    meta: dict[str, Any] | None = None,
) -> str:
    """The report as one Markdown document: the question as title, the report, the sources.

    ``report`` is normally already checked; it is checked again against ``citable`` (the URLs the
    run retrieved), which changes nothing in a checked report and keeps an unchecked one from
    slipping through; its source list is rebuilt, never duplicated. The plan, when given,
    goes into an appendix; ``meta`` (model, date, run id …) into a short run-details list.
    """
    checked = check_citations(report, list(citable))
    parts = [f"# {_escape_md(question) or 'Research report'}"]
    body = _shift_headings(strip_sources_section(checked.text).strip(), 2)
    if body:
        parts.append(body)
    parts.append(sources_section(checked.kept))
    if plan and plan.strip():
        parts.append(f"{PLAN_HEADING}\n\n{_shift_headings(plan.strip(), 3)}")
    if meta:
        lines = [f"- **{_escape_md(key)}**: {_escape_md(value)}" for key, value in meta.items()]
        parts.append(f"{META_HEADING}\n\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


# ---- HTML ------------------------------------------------------------------------------------------


def _parser() -> MarkdownIt:
    # html=False: raw tags in model text are shown, never interpreted. No linkify: a bare URL in
    # prose stays text; citations and the source list are linked below.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


def _inline_title(tokens: list[Token], i: int) -> str:
    inline = tokens[i + 1] if i + 1 < len(tokens) else None
    text = inline.content if inline is not None and inline.type == "inline" else ""
    return re.sub(r"[*_`:]", "", text).strip().lower()


def _link(url: str, text: str, css_class: str | None = None) -> list[Token]:
    attrs: dict[str, str | int | float] = {"href": url}
    if css_class:
        attrs["class"] = css_class
    attrs["rel"] = "noopener noreferrer"
    return [
        Token("link_open", "a", 1, attrs=attrs),
        Token("text", "", 0, content=text),
        Token("link_close", "a", -1),
    ]


def _sources_span(tokens: list[Token]) -> tuple[int, int]:
    """Token range of the last ``Sources used`` section that holds a list; (0, 0) if none."""
    span = (0, 0)
    start, level, has_list = -1, 0, False
    for i, token in enumerate(tokens + [Token("heading_open", "h1", 1)]):  # sentinel closes the last
        if token.type == "heading_open":
            this = int(token.tag[1])
            if start >= 0 and this <= level:
                if has_list:
                    span = (start, i)
                start = -1
            if start < 0 and i < len(tokens) and _inline_title(tokens, i) in _SOURCE_TITLES:
                start, level, has_list = i, this, False
        elif start >= 0 and token.type == "list_item_open":
            has_list = True
    return span


def _source_list(tokens: list[Token], start: int, end: int) -> list[str]:
    """URLs listed in ``tokens[start:end]``, in order; their items become links with ids."""
    urls: list[str] = []
    for i in range(start, end):
        token = tokens[i]
        if token.type == "ordered_list_open":
            token.attrJoin("class", "sources")
        if token.type != "list_item_open":
            continue
        inline = next((t for t in tokens[i + 1 : end] if t.type == "inline"), None)
        if inline is None:
            continue
        content = inline.content.strip()
        bare = re.fullmatch(r"<?(https?://[^\s<>]+)>?", content, re.IGNORECASE)
        link = next((c.attrGet("href") for c in inline.children or [] if c.type == "link_open"), None)
        url = bare.group(1) if bare else str(link) if link else None
        if url is None:
            found = _ANY_URL.search(content)
            url = found.group(0).rstrip(").,;]") if found else None
        if url is None:
            continue
        if url not in urls:
            urls.append(url)
        token.attrSet("id", f"source-{urls.index(url) + 1}")
        if bare and _SAFE_HREF.match(url):
            inline.children = _link(url, url)
    return urls


def _cite_tokens(text: str, numbers: dict[str, int], fallback: bool) -> list[Token] | None:
    """``text`` with its citations as numbered links, or ``None`` if it has none to link."""
    out: list[Token] = []
    pos = 0
    changed = False
    for match in _CITE.finditer(text):
        links: list[Token] = []
        urls = split_citation_group(match.group(1))
        if urls is None:
            continue  # prose in brackets, not a citation
        for url in urls:
            if url not in numbers and fallback:
                numbers[url] = len(numbers) + 1
            if url in numbers and _SAFE_HREF.match(url):
                links += _link(url, f"[{numbers[url]}]", "cite")
        if not links:
            continue  # not a listed source: leave the bracket as plain text
        if match.start() > pos:
            out.append(Token("text", "", 0, content=text[pos : match.start()]))
        out += links
        pos = match.end()
        changed = True
    if not changed:
        return None
    if pos < len(text):
        out.append(Token("text", "", 0, content=text[pos:]))
    return out


def _sanitize(children: list[Token], numbers: dict[str, int], fallback: bool) -> list[Token]:
    """Inline tokens with unsafe links unwrapped, images as alt text, citations linked."""
    out: list[Token] = []
    open_links: list[bool] = []  # per open link: was it kept?
    for child in children:
        if child.type == "link_open":
            keep = bool(_SAFE_HREF.match(str(child.attrGet("href") or "")))
            open_links.append(keep)
            if keep:
                child.attrSet("rel", "noopener noreferrer")
                out.append(child)
        elif child.type == "link_close":
            if open_links.pop() if open_links else False:
                out.append(child)
        elif child.type == "image":
            out.append(Token("text", "", 0, content=child.content))
        elif child.type == "html_inline":  # cannot happen with html=False; shown as text regardless
            out.append(Token("text", "", 0, content=child.content))
        elif child.type == "text" and not any(open_links):
            out += _cite_tokens(child.content, numbers, fallback) or [child]
        else:
            out.append(child)
    return out


def report_html(markdown: str, *, title: str, lang: str = "en") -> str:
    """A standalone HTML page for a Markdown report: escaped, script-free, citations numbered.

    ``[https://…]`` citations become ``<a href="URL" class="cite">[n]</a>``, ``n`` being the URL's
    position in the ``Sources used`` list (or, with no such list, its order of first citation);
    only ``http(s)`` URLs are ever linked.
    """
    md = _parser()
    env: dict[str, Any] = {}
    tokens = md.parse(markdown, env)
    listed = _source_list(tokens, *_sources_span(tokens))
    numbers = {url: n for n, url in enumerate(listed, start=1)}
    for i, token in enumerate(tokens):
        if token.type == "html_block":  # unreachable with html=False; shown as text regardless
            tokens[i] = Token("code_block", "code", 0, content=token.content)
        elif token.type == "inline" and token.children is not None:
            token.children = _sanitize(token.children, numbers, fallback=not listed)
    body = md.renderer.render(tokens, md.options, env)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{html.escape(lang, quote=True)}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(' '.join(title.split()))}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )

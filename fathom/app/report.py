"""The deep-research report as a Markdown document and as a standalone, safe HTML page.

Both render the one checked citation result the write node stored (the report and its
``citations["sources"]``): nothing is checked again and no source list is searched for.

The report is model text, so the HTML path trusts none of it: raw HTML in the Markdown is not
parsed (it is shown as text), only ``http(s)`` links survive, images become their alt text, and a
Content-Security-Policy forbids scripts on top. Citations ``[https://…]`` become numbered links
whose numbers are the positions of their URLs in the sources list.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any, Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token

from fathom.nodes.citations import (
    CITATION_GROUP,
    SOURCES_HEADING,
    escape_markdown,
    lines_outside_code,
    report_body,
    sources_section,
    split_citation_group,
)
from fathom.tools.base import Source

ReportFormat = Literal["md", "html"]

PLAN_HEADING = "## Appendix: research plan"
META_HEADING = "## Run details"
_HEADING = re.compile(r"^([ \t]{0,3})(#{1,6})(?=[ \t]|$)")
_CITE = re.compile(rf"\[[ \t]*({CITATION_GROUP})[ \t]*\]", re.IGNORECASE)
_SAFE_HREF = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)

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
ol.sources .url{color:#59636e;font-size:.85em;margin-left:.4em}
"""

# Defence in depth: even if something slipped through, the page may not run scripts or load
# anything; styles are inline and links still navigate.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"


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


def report_document(summary: dict[str, Any], fmt: ReportFormat) -> str:
    """A run's report (its ``--json`` summary) as a Markdown document or a standalone HTML page."""
    listed = (summary.get("citations") or {}).get("sources") or []
    # Runs recorded before sources had titles list bare URLs.
    sources = [Source(url=s, title="") if isinstance(s, str) else s for s in listed]
    meta = {"run": summary["run_id"], "rounds": summary["rounds"], "answer": summary.get("answer") or "—"}
    render = report_html if fmt == "html" else report_markdown
    return render(summary["question"], summary.get("report") or "", sources, plan=summary.get("plan"), meta=meta)


def _title(question: str) -> str:
    return f"# {escape_markdown(question) or 'Research report'}"


def _appendix(plan: str | None, meta: dict[str, Any] | None) -> list[str]:
    parts = []
    if plan and plan.strip():
        parts.append(f"{PLAN_HEADING}\n\n{_shift_headings(plan.strip(), 3)}")
    if meta:
        lines = [f"- **{escape_markdown(key)}**: {escape_markdown(value)}" for key, value in meta.items()]
        parts.append(f"{META_HEADING}\n\n" + "\n".join(lines))
    return parts


def report_markdown(
    question: str,
    report: str,
    sources: Sequence[Source],
    *,
    plan: str | None = None,
    meta: dict[str, Any] | None = None,
) -> str:
    """The report as one Markdown document: the question as title, the report, its sources, and
    the plan (in an appendix) and ``meta`` (model, date, run id …) when given.

    ``report`` and ``sources`` are the write node's checked result (``citations["sources"]``).
    """
    body = _shift_headings(report_body(report, sources).strip(), 2)
    parts = [_title(question), *([body] if body else []), sources_section(sources), *_appendix(plan, meta)]
    return "\n\n".join(parts) + "\n"


# ---- HTML ------------------------------------------------------------------------------------------


def _parser() -> MarkdownIt:
    # html=False: raw tags in model text are shown, never interpreted. No linkify: a bare URL in
    # prose stays text; citations and the source list are linked below.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


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


def _cite_tokens(text: str, numbers: dict[str, int]) -> list[Token] | None:
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


def _sanitize(children: list[Token], numbers: dict[str, int], linkable: set[str]) -> list[Token]:
    """Inline tokens with links to anything but a listed source unwrapped, images as alt text,
    citations linked."""
    out: list[Token] = []
    open_links: list[bool] = []  # per open link: was it kept?
    for child in children:
        if child.type == "link_open":
            # Only a listed source is linked: the citation check kept no other URL, and any
            # link form it might not know of must not bring one back.
            href = str(child.attrGet("href") or "")
            keep = href in linkable and bool(_SAFE_HREF.match(href))
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
            out += _cite_tokens(child.content, numbers) or [child]
        else:
            out.append(child)
    return out


def _render(markdown: str, numbers: dict[str, int]) -> str:
    md = _parser()
    env: dict[str, Any] = {}
    tokens = md.parse(markdown, env)
    linkable = set(numbers) | {md.normalizeLink(url) for url in numbers}  # a link's href comes percent-encoded
    for i, token in enumerate(tokens):
        if token.type == "html_block":  # unreachable with html=False; shown as text regardless
            tokens[i] = Token("code_block", "code", 0, content=token.content)
        elif token.type == "inline" and token.children is not None:
            token.children = _sanitize(token.children, numbers, linkable)
    return md.renderer.render(tokens, md.options, env)


def _sources_html(sources: Sequence[Source]) -> str:
    heading = html.escape(SOURCES_HEADING.lstrip("# "))
    if not sources:
        return f"<h2>{heading}</h2>\n<p>No sources were cited.</p>\n"
    items = []
    for n, source in enumerate(sources, start=1):
        url = source["url"]
        title = " ".join(source.get("title", "").split()) or url
        link = html.escape(title)
        if _SAFE_HREF.match(url):
            link = f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer">{link}</a>'
        shown = f' <span class="url">{html.escape(url)}</span>' if title != url else ""
        items.append(f'<li id="source-{n}">{link}{shown}</li>')
    return f'<h2>{heading}</h2>\n<ol class="sources">\n' + "\n".join(items) + "\n</ol>\n"


def report_html(
    question: str,
    report: str,
    sources: Sequence[Source],
    *,
    plan: str | None = None,
    meta: dict[str, Any] | None = None,
    lang: str = "en",
) -> str:
    """The report as a standalone HTML page: escaped, script-free, citations numbered.

    ``[https://…]`` citations become ``<a href="URL" class="cite">[n]</a>``, ``n`` being the URL's
    position in ``sources``; a citation or link of a URL not among them stays plain text, and only
    ``http(s)`` URLs are ever linked.
    """
    numbers = {source["url"]: n for n, source in enumerate(sources, start=1)}
    body = _shift_headings(report_body(report, sources).strip(), 2)
    main = (
        _render(_title(question) + "\n\n" + body, numbers)
        + _sources_html(sources)
        + _render("\n\n".join(_appendix(plan, meta)), numbers)
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{html.escape(lang, quote=True)}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(' '.join(question.split()))}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{main}</main>\n</body>\n</html>\n"
    )

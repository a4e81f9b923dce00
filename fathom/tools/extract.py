"""Turn a fetched :class:`~fathom.tools.fetch.Page` into readable text (a :class:`Document`).

HTML becomes light markdown: ``#`` headings, ``- `` list items, table rows as ``a | b | c``,
paragraphs separated by blank lines; navigation, scripts, forms and other boilerplate are dropped.
Plain text, markdown and JSON are kept as they are. Binary files are refused with a reason the
model can act on; PDF is refused for now (not supported yet).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from fathom.tools.base import ToolError
from fathom.tools.fetch import Page
from fathom.tools.media import MediaKind


class ExtractError(ToolError):
    """The page holds nothing we can read; the message says why (without the URL)."""


@dataclass(frozen=True)
class Document:
    """Readable text of one page."""

    url: str
    title: str
    text: str
    truncated: bool = False  # the body was cut at the fetch size cap


def extract(page: Page) -> Document:
    """Readable text of ``page``; raises :class:`ExtractError` for binary, PDF or empty pages."""
    if page.kind is MediaKind.BINARY:
        raise ExtractError(f"it is a binary file ({page.media_type}); it cannot be read")
    if page.kind is MediaKind.PDF:
        raise ExtractError("it is a PDF document; reading PDF is not supported yet")
    raw = page.text()
    if page.kind is MediaKind.HTML:
        title, text = html_to_text(raw)
    elif page.kind is MediaKind.JSON:
        title, text = "", _pretty_json(raw)
    else:
        title, text = "", _tidy_plain(raw)
    if not text.strip():
        raise ExtractError("the page has no readable text")
    return Document(url=page.final_url, title=title, text=text, truncated=page.truncated)


# ---- HTML -----------------------------------------------------------------------------------

_DROP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed",
     "nav", "aside", "form", "button", "select", "input", "textarea", "dialog", "head", "link",
     "meta", "map", "audio", "video", "picture", "img"}
)
_PAGE_CHROME = frozenset({"header", "footer"})  # dropped unless inside the article itself
_BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary",
                                "dialog", "alertdialog", "menu", "menubar"})
# Whole class/id tokens that mark site chrome. Kept short and exact: content classes such as
# "menu-item" in a recipe must survive.
_BOILERPLATE_MARKS = frozenset(
    {"sidebar", "navbar", "nav", "menu", "breadcrumb", "breadcrumbs", "cookie-banner",
     "cookie-consent", "cookies", "advert", "advertisement", "ads", "share", "social-share",
     "share-buttons", "site-header", "site-footer", "skip-link", "related-posts", "newsletter",
     "comments", "mw-navigation", "mw-jump-link", "toc", "navbox", "printfooter", "catlinks"}
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "body", "html", "blockquote", "figure",
     "figcaption", "address", "details", "summary", "dl", "dt", "dd", "hr", "fieldset",
     "center", "header", "footer", "caption", "li", "legend"}
)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u3000]+")
_BR = "\x00"  # stands for <br> inside inline text until lines are split


def html_to_text(html: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML document, boilerplate removed, structure kept as light markdown."""
    soup = BeautifulSoup(html, "html.parser")
    title = _collapse(soup.title.get_text()) if soup.title else ""
    _strip_boilerplate(soup)
    renderer = _Renderer()
    try:
        renderer.walk(soup)
        blocks = renderer.finish()
    except RecursionError:  # absurdly deep nesting: keep the words, lose the structure
        blocks = [line for line in map(_collapse, soup.get_text("\n").split("\n")) if line]
    return title, "\n\n".join(blocks)


def _strip_boilerplate(soup: BeautifulSoup) -> None:
    # Top-down with an explicit stack: a removed subtree is never visited, and deep pages cannot
    # exhaust the recursion limit. The flag says whether we are inside the article itself.
    stack: list[tuple[Tag, bool]] = [(soup, False)]
    while stack:
        node, in_article = stack.pop()
        for child in list(node.children):
            if not isinstance(child, Tag):
                continue
            if _is_boilerplate(child, in_article):
                child.decompose()
            else:
                stack.append((child, in_article or child.name in ("article", "main")))


def _is_boilerplate(tag: Tag, in_article: bool) -> bool:
    name = tag.name
    if name in _DROP_TAGS:
        return True
    if name in _PAGE_CHROME and not in_article:
        return True
    attrs = tag.attrs or {}
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if str(attrs.get("role", "")).lower() in _BOILERPLATE_ROLES:
        return True
    style = str(attrs.get("style", "")).replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    classes = attrs.get("class") or []
    if isinstance(classes, str):
        classes = classes.split()
    marks = {c.lower() for c in classes}
    if attrs.get("id"):
        marks.add(str(attrs["id"]).lower())
    return bool(marks & _BOILERPLATE_MARKS)


class _Renderer:
    """Walks the tree collecting blocks; inline text accumulates until a block boundary."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._inline: list[str] = []

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA
                    self._inline.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HEADINGS:
                self._flush()
                heading = _collapse(child.get_text(" "))
                if heading:
                    self.blocks.append("#" * _HEADINGS[name] + " " + heading)
            elif name == "table":
                self._flush()
                self.blocks.extend(_render_table(child))
            elif name in ("ul", "ol"):
                self._flush()
                lines = _render_list(child)
                if lines:
                    self.blocks.append("\n".join(lines))
            elif name == "pre":
                self._flush()
                code = child.get_text().strip("\n")
                if code.strip():
                    self.blocks.append(code)
            elif name == "br":
                self._inline.append(_BR)
            elif name in _BLOCK_TAGS:
                self._flush()
                if name == "blockquote":
                    inner = _Renderer()
                    inner.walk(child)
                    quoted = "\n".join("> " + line for b in inner.finish() for line in b.splitlines())
                    if quoted:
                        self.blocks.append(quoted)
                else:
                    self.walk(child)
                    self._flush()
            else:  # inline element: its text joins the current paragraph
                self.walk(child)

    def _flush(self) -> None:
        if not self._inline:
            return
        raw = "".join(self._inline)
        self._inline.clear()
        lines = [_collapse(line) for line in raw.replace("\n", " ").split(_BR)]
        text = "\n".join(line for line in lines if line)
        if text:
            self.blocks.append(text)

    def finish(self) -> list[str]:
        self._flush()
        return self.blocks


def _render_list(node: Tag, depth: int = 0) -> list[str]:
    lines: list[str] = []
    ordered = node.name == "ol"
    number = 0
    for item in node.find_all("li", recursive=False):
        number += 1
        inner = _Renderer()
        inner.walk(item)
        blocks = inner.finish()
        if not blocks:
            continue
        bullet = f"{number}. " if ordered else "- "
        indent = "  " * depth
        first, *rest = "\n".join(blocks).splitlines()
        # Nested lists come back as "- x" lines: indent them under their item.
        lines.append(f"{indent}{bullet}{first}")
        lines.extend(f"{indent}  {line}" for line in rest)
    return lines


def _render_table(table: Tag) -> list[str]:
    blocks: list[str] = []
    caption = table.find("caption")
    if caption is not None:
        text = _collapse(caption.get_text(" "))
        if text:
            blocks.append(text)
    rows: list[str] = []
    for tr in table.find_all("tr"):
        if tr.find_parent("table") is not table:  # a nested table's rows belong to it
            continue
        cells = [_collapse(c.get_text(" ")) for c in tr.find_all(["th", "td"], recursive=False)]
        if any(cells):
            rows.append(" | ".join(cells))
    if rows:
        blocks.append("\n".join(rows))
    return blocks


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\n", " ")).strip()


# ---- other text -----------------------------------------------------------------------------


def _tidy_plain(text: str) -> str:
    """Plain text as is, minus trailing spaces and runs of blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _pretty_json(text: str) -> str:
    """JSON indented one space per level (so it splits into passages), or as is when invalid."""
    try:
        return json.dumps(json.loads(text), indent=1, ensure_ascii=False)
    except ValueError:
        return _tidy_plain(text)

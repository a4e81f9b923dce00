"""HTML -> light markdown: the readable text of a web page, without its site chrome.

``#`` headings, ``- `` list items (nested ones indented), table rows as ``a | b | c``, ``> ``
block quotes, ``<pre>`` kept line for line, paragraphs separated by blank lines. Scripts, styles,
navigation, forms, hidden elements and boilerplate marked by tag, ARIA role or class/id are
dropped; a page's ``header``/``footer`` are dropped unless they sit inside the article itself.

Parsing is libxml2's HTML parser (lxml), which is forgiving and fast: bench/read_pipeline.py
compares the whole read pipeline with trafilatura. A page nested deeper than libxml2 (or Python's
recursion) can follow keeps its words and loses its structure.
"""

from __future__ import annotations

import html as html_lib
import re
import threading

from lxml import etree
from lxml import html as lxml_html

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
_UNREADABLE_TAGS = re.compile(r"<(script|style|noscript|template|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_ANY_TAG = re.compile(r"<[^>]*>")
_local = threading.local()  # lxml parsers must not be shared between threads


def _parser() -> lxml_html.HTMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        # huge_tree raises libxml2's nesting limit from 256 to 2048; encoding is fixed because
        # the text was decoded already (a <meta charset> must not re-decode it).
        parser = _local.parser = lxml_html.HTMLParser(
            encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True, huge_tree=True
        )
    return parser


def html_to_text(markup: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML document, boilerplate removed, structure kept as light markdown."""
    parser = _parser()
    try:
        root = lxml_html.document_fromstring(markup.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError):  # nothing but whitespace
        return "", ""
    title_el = root.find(".//title")
    title = _collapse(title_el.text_content()) if title_el is not None else ""
    if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):  # content was lost
        return title, _words_only(markup)
    _strip_boilerplate(root)
    renderer = _Renderer()
    try:
        renderer.walk(root)
        blocks = renderer.finish()
    except RecursionError:  # absurdly deep nesting: keep the words, lose the structure
        return title, _words_only(markup)
    return title, "\n\n".join(blocks)


def _words_only(markup: str) -> str:
    """The text of any markup, one line per run of text between tags: the last resort."""
    text = html_lib.unescape(_ANY_TAG.sub("\n", _UNREADABLE_TAGS.sub("\n", markup)))
    return "\n\n".join(line for line in map(_collapse, text.split("\n")) if line)


def _strip_boilerplate(root: lxml_html.HtmlElement) -> None:
    # Top-down with an explicit stack: a removed subtree is never visited, and deep pages cannot
    # exhaust the recursion limit. The flag says whether we are inside the article itself.
    stack: list[tuple[lxml_html.HtmlElement, bool]] = [(root, False)]
    while stack:
        node, in_article = stack.pop()
        for child in list(node):
            tag = child.tag
            if not isinstance(tag, str):  # an entity or other non-element node
                continue
            if _is_boilerplate(child, tag, in_article):
                child.drop_tree()  # keeps the text that follows the element
            else:
                stack.append((child, in_article or tag in ("article", "main")))


def _is_boilerplate(el: lxml_html.HtmlElement, tag: str, in_article: bool) -> bool:
    if tag in _DROP_TAGS:
        return True
    if tag in _PAGE_CHROME and not in_article:
        return True
    attrib = el.attrib
    if not attrib:
        return False
    if "hidden" in attrib or attrib.get("aria-hidden", "").lower() == "true":
        return True
    if attrib.get("role", "").lower() in _BOILERPLATE_ROLES:
        return True
    style = attrib.get("style")
    if style:
        style = style.replace(" ", "").lower()
        if "display:none" in style or "visibility:hidden" in style:
            return True
    marks = set(attrib.get("class", "").lower().split())
    if attrib.get("id"):
        marks.add(attrib["id"].lower())
    return not marks.isdisjoint(_BOILERPLATE_MARKS)


def _text(el: lxml_html.HtmlElement) -> str:
    """All text inside ``el``, pieces joined by spaces, collapsed."""
    return _collapse(" ".join(el.itertext()))


class _Renderer:
    """Walks the tree collecting blocks; inline text accumulates until a block boundary."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._inline: list[str] = []

    def walk(self, node: lxml_html.HtmlElement) -> None:
        inline = self._inline
        if node.text:
            inline.append(node.text)
        for child in node:
            name = child.tag
            if not isinstance(name, str):
                pass
            elif name in _HEADINGS:
                self._flush()
                heading = _text(child)
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
                code = child.text_content().strip("\n")
                if code.strip():
                    self.blocks.append(code)
            elif name == "br":
                inline.append(_BR)
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
            if child.tail:  # the text after an element flows on in its parent
                inline.append(child.tail)

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


def _render_list(node: lxml_html.HtmlElement, depth: int = 0) -> list[str]:
    lines: list[str] = []
    ordered = node.tag == "ol"
    number = 0
    for item in node.iterchildren("li"):
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


def _render_table(table: lxml_html.HtmlElement) -> list[str]:
    blocks: list[str] = []
    caption = table.find("caption")
    if caption is not None:
        text = _text(caption)
        if text:
            blocks.append(text)
    rows: list[str] = []
    for tr in table.iter("tr"):
        if next(tr.iterancestors("table"), None) is not table:  # a nested table's rows belong to it
            continue
        cells = [_text(c) for c in tr.iterchildren("th", "td")]
        if any(cells):
            rows.append(" | ".join(cells))
    if rows:
        blocks.append("\n".join(rows))
    return blocks


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\n", " ")).strip()

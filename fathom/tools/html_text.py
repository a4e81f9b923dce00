"""HTML -> light markdown: the readable text of a web page, without its site chrome.

``#`` headings, ``- `` list items (nested ones indented), table rows as ``a | b | c`` under their
caption, ``> `` block quotes, ``<pre>`` kept line for line, paragraphs separated by blank lines.
A definition list keeps each term on its own line with its description indented under it (the
term and the description's first block in one block), so that what a description belongs to can
be read off the indentation (:mod:`fathom.tools.passages` relies on it). Scripts, styles,
navigation, forms, hidden elements and boilerplate marked by tag, ARIA role or class/id are
dropped; a page's ``header``/``footer`` are dropped unless they sit inside the article itself.

The tree is BeautifulSoup's, built from libxml2's forgiving HTML parser (lxml) by
:class:`_ReadableTreeBuilder`. Building a soup costs a few microseconds of Python per element, so
the builder leaves boilerplate out *while parsing* instead of building it and decomposing it
afterwards: on real pages most elements are site chrome (menus, footers, comment threads), and
this is what keeps the read pipeline faster than trafilatura (bench/read_pipeline.py). A page
nested deeper than libxml2's tree limit or Python's recursion keeps its words, not its structure.
"""

from __future__ import annotations

import html as html_lib
import io
import re
from collections.abc import Iterator, Mapping

from bs4 import BeautifulSoup, Tag
from bs4.builder import HTMLTreeBuilder
from lxml import etree

_DROP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed",
     "nav", "aside", "form", "button", "select", "input", "textarea", "dialog", "head", "link",
     "meta", "map", "audio", "video", "picture", "img"}
)
_PAGE_CHROME = frozenset({"header", "footer"})  # dropped unless inside the article itself
_ARTICLE_TAGS = frozenset({"article", "main"})
_BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary",
                                "dialog", "alertdialog", "menu", "menubar"})
# Whole class/id tokens that mark site chrome. Kept short and exact: content classes such as
# "menu-item" in a recipe must survive.
_BOILERPLATE_MARKS = frozenset(
    {"sidebar", "navbar", "nav", "menu", "breadcrumb", "breadcrumbs", "cookie-banner",
     "cookie-consent", "cookies", "advert", "advertisement", "ads", "share", "social-share",
     "share-buttons", "site-header", "site-footer", "skip-link", "related-posts", "newsletter",
     "comments", "mw-navigation", "mw-jump-link", "toc", "navbox", "printfooter", "catlinks",
     "headerlink"}  # Sphinx's pilcrow after every heading and API signature
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "body", "html", "blockquote", "figure",
     "figcaption", "address", "details", "summary", "dl", "dt", "dd", "hr", "fieldset",
     "center", "header", "footer", "caption", "li", "legend"}
)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u3000]+")
_BR = "\x00"  # stands for <br> inside inline text until lines are split
_UNREADABLE_OPEN = re.compile(r"<(script|style|noscript|template|head)\b", re.IGNORECASE)
_UNREADABLE_CLOSE = re.compile(r"</(script|style|noscript|template|head)\s*>", re.IGNORECASE)
_CLOSE_OF = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style", "noscript", "template", "head")}
_ANY_TAG = re.compile(r"<[^>]*>")
# Elements open at once, boilerplate included, past which a page is read as words only: libxml2's
# own limit when it builds a tree (XML_PARSE_HUGE), which it does not apply when it feeds a
# parser target. Deeper than that, structure is noise and building the soup mere cost.
_MAX_DEPTH = 2048


class _TooDeep(Exception):
    """Raised inside the parse to abandon it: the page nests deeper than :data:`_MAX_DEPTH`."""


def html_to_text(markup: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML document, boilerplate removed, structure kept as light markdown."""
    builder = _ReadableTreeBuilder()
    # UTF-8 bytes, declared as such to libxml2: the text was decoded already, and a
    # <meta charset> must not re-decode it. Handed over as a file so that BeautifulSoup skips its
    # guess at whether short markup is really a URL or a file name (a warning for people at a
    # prompt; a page may well consist of a URL).
    try:
        soup = BeautifulSoup(io.BytesIO(markup.encode("utf-8", "replace")), builder=builder)
    except _TooDeep:
        return _collapse("".join(builder.title)), _words_only(markup)
    title = _collapse("".join(builder.title))
    renderer = _Renderer()
    try:
        renderer.walk(soup)
        blocks = renderer.finish()
    except RecursionError:  # absurdly deep nesting: keep the words, lose the structure
        return title, _words_only(markup)
    return title, "\n\n".join(blocks)


def _words_only(markup: str) -> str:
    """The text of any markup, one line per run of text between tags: the last resort."""
    markup = _drop_unreadable(markup)
    # No tag runs past the last ">": the pattern is applied up to it only, or each "<" after it
    # would scan to the end of the page (quadratic in a page of unclosed "<").
    end = markup.rfind(">") + 1
    text = html_lib.unescape(_ANY_TAG.sub("\n", markup[:end]) + markup[end:])
    return "\n\n".join(line for line in map(_collapse, text.split("\n")) if line)


def _drop_unreadable(markup: str) -> str:
    """``markup`` with each script, style, template, noscript and head element cut out (opening
    tag to the first closing tag of its name), each replaced by a line break; an element never
    closed stays, its tags to be dropped as any other.

    Linear: the last closing tag of each name is known before the scan, so an unclosed opening
    tag is passed over at once (a lazy ``<script>.*?</script>`` pattern rescanned the rest of
    the page for each, and a page of thousands of unclosed ``<template>`` took minutes; found by
    fuzzing).
    """
    last_close: dict[str, int] = {}
    for close in _UNREADABLE_CLOSE.finditer(markup):
        last_close[close.group(1).lower()] = close.start()
    if not last_close:
        return markup
    out: list[str] = []
    pos = at = 0
    while (opening := _UNREADABLE_OPEN.search(markup, at)) is not None:
        name = opening.group(1).lower()
        if last_close.get(name, -1) < opening.end():
            at = opening.start() + 1  # never closed: nothing to cut
            continue
        close = _CLOSE_OF[name].search(markup, opening.end())
        assert close is not None  # one starts at or after opening.end(): last_close says so
        out.append(markup[pos : opening.start()] + "\n")
        pos = at = close.end()
    out.append(markup[pos:])
    return "".join(out)


# ---- parsing ----------------------------------------------------------------------------------


class _ReadableTreeBuilder(HTMLTreeBuilder):
    """A BeautifulSoup tree builder fed by lxml's HTML parser that never builds boilerplate.

    lxml calls :meth:`start`, :meth:`end` and :meth:`data` as it parses (its parser-target
    interface, as in bs4's own lxml builder). It calls only the methods a target has, so comments,
    doctypes and processing instructions never reach the soup: every string in it is text.
    A boilerplate element and everything inside it are skipped by counting their nesting, so
    BeautifulSoup creates no objects for them; the text after them still reaches their parent.
    The first ``<title>`` is collected on the way, though it sits in the dropped ``<head>``.
    One builder per document: it holds that parse's state.
    """

    NAME = "fathom-readable"

    def __init__(self) -> None:
        # No attributes reach the soup (boilerplate is judged here, the renderer needs none), so
        # no class lists to split; no special string classes for <script>/<style>, never kept.
        super().__init__(multi_valued_attributes={}, string_containers={})
        self.title: list[str] = []
        self._title_state = 0  # 0: no <title> seen yet, 1: inside the first one, 2: done
        self._skip_depth = 0  # > 0 while inside a dropped element
        self._depth = 0  # elements open, dropped ones included

    def feed(self, markup: str | bytes) -> None:
        # A parser per document: a parser target cannot be swapped, and no state is shared
        # between threads. huge_tree lifts libxml2's limit on the size of a text node.
        parser = etree.HTMLParser(target=self, encoding="utf-8", recover=True, no_network=True,
                                  huge_tree=True)
        parser.feed(markup)
        parser.close()

    # -- lxml parser target --

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        self._depth += 1
        if self._depth > _MAX_DEPTH:
            raise _TooDeep  # lxml stops parsing and re-raises it from feed()
        if tag == "title" and self._title_state == 0:
            self._title_state = 1
        if self._skip_depth:
            self._skip_depth += 1
        elif self._is_boilerplate(tag, attrib):
            self._skip_depth = 1
        else:
            assert self.soup is not None
            self.soup.handle_starttag(tag, None, None, None)

    def end(self, tag: str) -> None:
        self._depth -= 1
        if tag == "title" and self._title_state == 1:
            self._title_state = 2
        if self._skip_depth:
            self._skip_depth -= 1
        else:
            assert self.soup is not None
            self.soup.handle_endtag(tag)

    def data(self, data: str) -> None:
        if self._title_state == 1:
            self.title.append(data)
        if not self._skip_depth:
            assert self.soup is not None
            self.soup.handle_data(data)

    def close(self) -> None:
        """End of document (lxml requires a target to have it): nothing left to do."""

    def _is_boilerplate(self, tag: str, attrib: Mapping[str, str]) -> bool:
        if tag in _DROP_TAGS:
            return True
        if tag in _PAGE_CHROME and not self._in_article():
            return True
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

    def _in_article(self) -> bool:
        # The soup's stack of open elements holds only kept ones: exactly the ancestors.
        assert self.soup is not None
        return any(t.name in _ARTICLE_TAGS for t in self.soup.tagStack)


# ---- rendering --------------------------------------------------------------------------------


def _text(el: Tag) -> str:
    """All text inside ``el``, pieces joined by spaces, collapsed."""
    contents = el.contents
    if len(contents) == 1 and isinstance(contents[0], str):  # most cells and headings: skip the tree walk
        return _collapse(contents[0])
    return _collapse(el.get_text(" "))


def _child_tags(node: Tag, *names: str) -> Iterator[Tag]:
    """The element children of ``node`` named ``names``, in order."""
    for child in node.contents:
        if isinstance(child, Tag) and child.name in names:
            yield child


class _Renderer:
    """Walks the tree collecting blocks; inline text accumulates until a block boundary."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._inline: list[str] = []

    def walk(self, node: Tag) -> None:
        inline = self._inline
        for child in node.contents:
            if isinstance(child, str):  # a NavigableString, always text (see _ReadableTreeBuilder)
                inline.append(child)
                continue
            name = child.name
            if name in _HEADINGS:
                self._flush()
                heading = _text(child)
                if heading:
                    self.blocks.append("#" * _HEADINGS[name] + " " + heading)
            elif name == "table":
                self._flush()
                self.blocks.extend(_render_table(child))
            elif name == "dl":
                self._flush()
                self.blocks.extend(_render_definitions(child))
            elif name == "ul" or name == "ol":
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
    for item in _child_tags(node, "li"):
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


_INDENT = "  "  # a description under its term, as a list item's continuation under its bullet


def _render_definitions(node: Tag) -> list[str]:
    """A ``<dl>``: each term on a line, its description's blocks indented under it, and the
    term(s) in one block with the description's first block, so the two are never parted.

    API references (Sphinx, pdoc, javadoc) put a signature in the ``<dt>`` and its docstring in
    the ``<dd>``; a nested ``<dl>`` (a class's methods) nests one indentation level deeper.
    """
    blocks: list[str] = []
    terms: list[str] = []
    for item in _definition_items(node):
        inner = _Renderer()
        inner.walk(item)
        rendered = inner.finish()
        if item.name == "dt":
            term = " ".join(line.strip() for block in rendered for line in block.splitlines() if line.strip())
            if term:
                terms.append(term)
            continue
        if item.name == "dd":
            rendered = ["\n".join(_INDENT + line if line else line for line in block.split("\n")) for block in rendered]
        if terms:
            rendered = ["\n".join(terms) + ("\n" + rendered[0] if rendered else ""), *rendered[1:]]
            terms = []
        blocks.extend(rendered)
    if terms:  # a term without a description
        blocks.append("\n".join(terms))
    return blocks


def _definition_items(node: Tag) -> Iterator[Tag]:
    """The ``<dt>``/``<dd>`` (and any stray) elements of a ``<dl>``, through the ``<div>`` wrappers
    HTML allows around each group."""
    for child in node.contents:
        if isinstance(child, Tag):
            if child.name == "div":
                yield from _definition_items(child)
            else:
                yield child


def _table_rows(node: Tag) -> Iterator[Tag]:
    """The ``<tr>`` elements under ``node`` in document order, not those of a nested table."""
    for child in node.contents:
        if isinstance(child, Tag):
            if child.name == "tr":
                yield child
            if child.name != "table":  # a nested table's rows belong to it
                yield from _table_rows(child)


def _render_table(table: Tag) -> list[str]:
    """One block: the caption's line (if any) above the rows, the first row being the header."""
    lines: list[str] = []
    caption = next(_child_tags(table, "caption"), None)
    if caption is not None:
        text = _text(caption)
        if text:
            lines.append(text)
    for tr in _table_rows(table):
        cells = [_text(c) for c in _child_tags(tr, "th", "td")]
        if any(cells):
            lines.append(" | ".join(cells))
    return ["\n".join(lines)] if lines else []


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\n", " ")).strip()

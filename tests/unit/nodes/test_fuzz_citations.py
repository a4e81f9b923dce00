"""Fuzzing the citation check and the report renderer: generated Markdown with odd URLs and
brackets never raises, and no URL the run did not retrieve survives as a citation or a link, in
the checked report, its Markdown document or its HTML page.

"Survives" is judged the way readers meet it: the links a CommonMark renderer makes of the text
(inline, reference-style, autolinks), the hrefs of the HTML page, and the ``[https://…]``
citations the checker itself recognises (a second check removes nothing).
"""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import HealthCheck, given, settings
from markdown_it import MarkdownIt

from fathom.app.report import report_html, report_markdown
from fathom.nodes.citations import check_citations
from tests.support.fuzz import RETRIEVED, TEXT, reports

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
COMMONMARK = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
_HREF_ATTR = re.compile(r'\shref="([^"]*)"')


def markdown_links(text: str) -> list[str]:
    """The link targets a CommonMark renderer makes of ``text`` (percent-encoding undone)."""
    found: list[str] = []

    def walk(tokens: list) -> None:
        for token in tokens:
            if token.type == "link_open":
                found.append(str(token.attrGet("href")))
            if token.children:
                walk(token.children)

    walk(COMMONMARK.parse(text))
    return found


def _linkable(urls: list[str]) -> set[str]:
    return set(urls) | {COMMONMARK.normalizeLink(url) for url in urls}


def check_report(report: str, question: str = "Q") -> None:
    """The properties one report must have (see the module docstring)."""
    retrieved = _linkable(RETRIEVED)
    result = check_citations(report, RETRIEVED)
    assert set(result.kept) <= set(RETRIEVED)
    again = check_citations(result.text, RETRIEVED)
    assert again.removed == [], f"a second check still finds unretrieved citations: {again.removed}"
    for text in (result.text, report_markdown(question, result.text, result.sources)):
        stray = [url for url in markdown_links(text) if url not in retrieved]
        assert not stray, f"unretrieved links survive in the Markdown: {stray}"
    page = report_html(question, result.text, result.sources, plan=report)
    stray = [url for url in map(html.unescape, _HREF_ATTR.findall(page)) if url not in retrieved]
    assert not stray, f"unretrieved links survive in the HTML: {stray}"
    assert "<script" not in page


@FUZZ
@given(reports(), TEXT)
def test_no_unretrieved_url_survives_the_check_or_the_renderers(report: str, question: str) -> None:
    check_report(report, question)


# ---- the cases fuzzing found: link forms the check did not know, rendered as live links -----------


@pytest.mark.parametrize("report", [
    "See [the page][r].\n\n[r]: https://evil.com/a",
    "[r]: <https://evil.com/a> 'title'\n\nSee [r].",
    "[two\nlines](https://evil.com/b)",
    "[x]( https://evil.com/c )",
    "[x](\nhttps://evil.com/d\n'title')",
    '[x](https://evil.com/e\n"title")',
    "Mirror: <ftp://evil.com/a>.",
    "Write to <someone@evil.com>.",
])
def test_reference_links_and_spaced_destinations_are_checked_too(report: str) -> None:
    check_report(report)
    assert "evil.com" not in check_citations(report, RETRIEVED).body


def test_a_reference_definition_of_a_retrieved_page_stays() -> None:
    result = check_citations("See [the page][r].\n\n[r]: https://a.com/x/", RETRIEVED)
    assert result.kept == ["https://a.com/x"]
    assert markdown_links(result.text)[0] == "https://a.com/x"

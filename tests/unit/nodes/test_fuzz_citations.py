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
from fathom.nodes.citations import check_citations, strip_sources_section
from tests.support.fuzz import RETRIEVED, TEXT, reports

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True)
COMMONMARK = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
_HREF_ATTR = re.compile(r'\shref="([^"]*)"')
_ABSOLUTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # a URL, not "", "#x" or "page.html"


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
        stray = [url for url in markdown_links(text) if _ABSOLUTE.match(url) and url not in retrieved]
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
    "[https://a.com/x][https://a.com/x[](https://evil.com/a)",  # a kept citation glued to "(…)"
    "[https://a.com/x[](https://a.com/x)",
    "See [0].\r\r[0]:https://evil.com/a\r",  # old Mac line ends
    "[see [" + "long " * 400 + "]](https://evil.com/a)",  # link text past the pattern's bounds
    "[x][r]\n\n[r]: https://a.com/x(javascript:alert(1))",
    "[x](https://evil.com/a_(b_(c_(d))))",
    "[`\n`](https://evil.com/a)`x`",  # a code span over a line break pairs its backticks first
    "[`](https://evil.com/a)```",  # one backtick is not closed by three
    "- ```\n[x](https://evil.com/a)```\n",  # a fence opened in a list item, closed by the next line
])
def test_reference_links_and_spaced_destinations_are_checked_too(report: str) -> None:
    check_report(report)
    result = check_citations(report, RETRIEVED)
    assert "evil.com" not in result.body or "\\(" in result.body  # removed, or left as text no renderer links


def test_a_reference_definition_of_a_retrieved_page_stays() -> None:
    result = check_citations("See [the page][r].\n\n[r]: https://a.com/x/", RETRIEVED)
    assert result.kept == ["https://a.com/x"]
    assert markdown_links(result.text)[0] == "https://a.com/x"


def test_a_report_repeating_its_source_heading_is_read_in_one_pass() -> None:
    """Found by the long fuzz run: each source-list heading rescanned every heading after it, so a
    model repeating one 20,000 times cost 6 s (60,000: about a minute)."""
    looped = "## Sources used\n" * 60_000 + "# Executive Summary\nThe bridge opened in 1897."
    assert strip_sources_section(looped) == looped  # a heading above the lists follows them: nothing is cut
    listed = "Fact.\n\n**Sources:**\n" + "https://a.com/x\n\n" * 60_000
    assert strip_sources_section(listed) == "Fact."


@pytest.mark.parametrize(("report", "unlinked"), [
    ("- ```\n[x](https://evil.com/a)```\n", "https://evil.com/a"),  # the pattern reads a code span; the renderer a link
    ("- ```\n[x](https://evil.com/a%20b)```\n[y](https://a.com/x)", "https://evil.com/a b"),
])
def test_a_link_only_the_escape_fallback_unlinks_is_reported_removed(report: str, unlinked: str) -> None:
    result = check_citations(report, RETRIEVED)
    assert not [url for url in markdown_links(result.text) if "evil.com" in url]
    assert unlinked in result.removed
    assert result.as_dict()["removed_urls"] == result.removed

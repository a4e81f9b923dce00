"""HTML and text extraction, and content-type routing (no network)."""

from __future__ import annotations

import warnings

import pytest

from fathom.tools.extract import ExtractError, extract, html_to_text
from fathom.tools.fetch import Page
from fathom.tools.media import MediaKind, classify, sniff
from tests.fakes.web import ARTICLE_HTML, ENCYCLOPEDIA_HTML, NEWS_HTML


def page(body: str | bytes, content_type: str, kind: MediaKind, url: str = "https://site.test/p") -> Page:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return Page(url=url, final_url=url, status=200, content_type=content_type, kind=kind, body=data,
                charset="utf-8")


def test_article_keeps_title_headings_lists_and_tables() -> None:
    title, text = html_to_text(ARTICLE_HTML)
    assert title == "Kestrel Bridge \u2013 History and Engineering | Rivertown Heritage"
    assert "# Kestrel Bridge\n" in text
    assert "\n## History\n" in text and "\n### Restoration\n" in text
    assert "officially opened on 14 June 1897 by the mayor" in text
    assert "- Main span: 62 metres" in text
    assert "- Deck width: 7.5 metres\n  - Footway on the east side only" in text
    # The caption heads its table's block: the two travel together into passages.
    assert "Key figures\nFeature | Value | Unit\nTotal length | 148 | m\nCost (1897) | 21,400 | GBP" in text
    assert "The 2004\u20132006 restoration" in text


def test_article_drops_boilerplate() -> None:
    _, text = html_to_text(ARTICLE_HTML)
    for junk in ("TRACKING-SCRIPT", "late script", "font-family", "All bridges", "Contact us",
                 "Site banner", "cookies", "Sidebar", "Search the site", "Footer", "All rights reserved"):
        assert junk not in text, junk


def test_whitespace_is_collapsed() -> None:
    _, text = html_to_text(ARTICLE_HTML)
    assert "  " not in text.replace("\n  - ", "")
    assert "\n\n\n" not in text
    assert text == text.strip()


def test_encyclopedia_page() -> None:
    title, text = html_to_text(ENCYCLOPEDIA_HTML)
    assert title == "Lake Vostrand - Open Encyclopedia"
    assert "Location | Norrland, Sweden" in text  # infobox table
    assert "## Ecology" in text and "80,000 in a 2019 survey" in text
    assert "1. 1911: first sounding\n2. 1952: hydroelectric dam built at the outlet" in text
    for junk in ("Main page", "Random article", "Retrieved from", "Categories", "1 Geography"):
        assert junk not in text, junk


def test_article_header_and_footer_are_content_but_site_chrome_is_not() -> None:
    _, text = html_to_text(NEWS_HTML)
    assert text.startswith("# City council approves tram extension\n\nBy Ana Lopes, 3 March 2025")
    assert '> "This is the biggest transport investment in a generation,"' in text
    assert "start in 2026\nand finish in 2029." in text  # <br> is a line break
    for junk in ("Sport", "newsletter", "Share on social media", "Contact the newsroom"):
        assert junk not in text, junk


def test_hidden_elements_and_comments_are_dropped() -> None:
    html = """<html><body><p>Visible.</p><div hidden>H1</div><p style="display: none">H2</p>
    <span aria-hidden="true">H3</span><!-- a comment --><p>Also <a href="#">linked</a> text.</p></body></html>"""
    _, text = html_to_text(html)
    assert text == "Visible.\n\nAlso linked text."


def test_absurdly_deep_nesting_keeps_the_words() -> None:
    _, text = html_to_text("<div>" * 5000 + "<p>deep text</p>" + "</div>" * 5000)
    assert text == "deep text"


def test_markup_that_looks_like_a_url_or_file_name_is_read_without_warnings() -> None:
    # BeautifulSoup warns about short markup that looks like a URL or a file name; a page may be just that.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert html_to_text("https://site.test/page") == ("", "https://site.test/page")
        assert html_to_text("index.html") == ("", "index.html")


def test_pre_blocks_keep_their_lines() -> None:
    _, text = html_to_text("<body><p>Code:</p><pre>def f():\n    return 1\n</pre></body>")
    assert text == "Code:\n\ndef f():\n    return 1"


def test_plain_text_markdown_and_json_are_kept() -> None:
    assert extract(page("Line one.\r\n\r\n\r\n\r\nLine two.   \n", "text/plain", MediaKind.TEXT)).text == (
        "Line one.\n\nLine two.")
    assert extract(page("# Readme\n\n*hi*", "text/markdown", MediaKind.TEXT)).text == "# Readme\n\n*hi*"
    doc = extract(page('{"a": [1, 2], "b": "x"}', "application/json", MediaKind.JSON))
    assert doc.text == '{\n "a": [\n  1,\n  2\n ],\n "b": "x"\n}'
    assert extract(page("{not json", "application/json", MediaKind.JSON)).text == "{not json"


def test_empty_page_is_an_error() -> None:
    with pytest.raises(ExtractError, match="no readable text"):
        extract(page("<html><head><script>x()</script></head><body><nav>Menu</nav></body></html>",
                      "text/html", MediaKind.HTML))
    with pytest.raises(ExtractError, match="no readable text"):
        extract(page("   \n", "text/plain", MediaKind.TEXT))


def test_binary_and_pdf_are_errors() -> None:
    with pytest.raises(ExtractError, match=r"^it is a binary file \(image/png\); it cannot be read$"):
        extract(page(b"", "image/png", MediaKind.BINARY))
    with pytest.raises(ExtractError, match=r"^the PDF could not be read \("):  # readable PDFs: test_tools_pdf.py
        extract(page(b"%PDF-1.4", "application/pdf", MediaKind.PDF))


@pytest.mark.parametrize(
    ("content_type", "url", "kind"),
    [
        ("text/html; charset=utf-8", "", MediaKind.HTML),
        ("application/xhtml+xml", "", MediaKind.HTML),
        ("text/plain", "https://x.test/file.pdf", MediaKind.TEXT),  # the header wins over the name
        ("text/html", "https://x.test/pdf-guide", MediaKind.HTML),  # no substring routing (T13)
        ("application/pdf", "", MediaKind.PDF),
        ("application/ld+json", "", MediaKind.JSON),
        ("application/rss+xml", "", MediaKind.TEXT),
        ("image/png", "", MediaKind.BINARY),
        ("video/mp4", "", MediaKind.BINARY),
        ("application/zip", "", MediaKind.BINARY),
        ("application/octet-stream", "https://x.test/paper.pdf", MediaKind.PDF),
        ("application/octet-stream", "https://x.test/blob", MediaKind.BINARY),
        ("", "https://x.test/photo.JPG", MediaKind.BINARY),
        ("", "https://x.test/page", None),
    ],
)
def test_classify(content_type: str, url: str, kind: MediaKind | None) -> None:
    assert classify(content_type, url) is kind


def test_sniff() -> None:
    assert sniff(b"  <!DOCTYPE html><html>") is MediaKind.HTML
    assert sniff(b"%PDF-1.7") is MediaKind.PDF
    assert sniff(b'{"a": 1}') is MediaKind.JSON
    assert sniff(b"\x89PNG\r\n\x1a\n\x00\x00") is MediaKind.BINARY
    assert sniff(b"just words") is MediaKind.TEXT


# ---- definition lists: a term and its description stay together ------------------------------------

API_PAGE = """<html><body><div class="body" role="main"><h1>contextlib<a class="headerlink" href="#c">\u00b6</a></h1>
<dl class="py function"><dt class="sig sig-object py" id="contextlib.chdir">
""" + ('<span class="sig-prename descclassname"><span class="pre">contextlib.</span></span><span class="sig-name '
       'descname"><span class="pre">chdir</span></span><span class="sig-paren">(</span><em class="sig-param"><span '
       'class="n"><span class="pre">path</span></span></em><span class="sig-paren">)</span><a class="headerlink" '
       'href="#contextlib.chdir">\u00b6</a><br/></dt>') + """
<dd><p>Changes the working directory for the block.</p><p>Not safe across threads.</p>
<div class="highlight"><pre>with chdir(path):
    build()</pre></div>
<dl class="py method"><dt>restore()</dt><dd><p>Goes back.</p><ul><li>once</li></ul></dd></dl>
</dd></dl>
<dl><div><dt>Alpha</dt><dt>Alef</dt><dd>First letter.</dd></div><div><dt>Omega</dt></div></dl>
</div></body></html>"""


def test_a_definition_keeps_its_term_on_the_line_above_it_and_is_indented_under_it() -> None:
    _, text = html_to_text(API_PAGE)
    assert text.startswith("# contextlib\n\n")  # Sphinx's pilcrow links are chrome
    assert "\u00b6" not in text
    # The signature reads as written (no spaces between its spans) and heads its description's first block.
    assert "contextlib.chdir(path)\n  Changes the working directory for the block.\n\n  Not safe across threads." in text
    assert "\n\n  with chdir(path):\n      build()\n\n" in text  # code keeps its own indentation, one level in
    assert "\n\n  restore()\n    Goes back.\n\n    - once" in text  # a nested list of definitions nests deeper


def test_definition_groups_wrapped_in_divs_and_terms_without_descriptions() -> None:
    _, text = html_to_text(API_PAGE)
    assert text.endswith("Alpha\nAlef\n  First letter.\n\nOmega")

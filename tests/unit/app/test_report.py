"""The report as Markdown and as a standalone, safe HTML page."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fathom.app.report import report_document, report_html, report_markdown
from fathom.nodes.citations import check_citations

A = "https://a.com/x?p=1&q=2"
B = "https://b.org/page"
C = "https://c.net/doc"
# Titles come from the pages read (B's is hostile: page titles are untrusted); C has none.
RETRIEVED = [{"url": A, "title": "Plant history"}, {"url": B, "title": "Growth <b>[2022]</b>"}, {"url": C, "title": ""}]
QUESTION = "What happened in <b>2023</b>?"

REPORT = f"""# Executive Summary
- Growth was 12% in 2023. [{C}]
- The plant opened in 1999. [{A}]

## Main Body
Scope text <script>alert("xss")</script> and <img src=x onerror="alert(1)"> stay text.
Grouped claim. [{B}, {A}]
A [bad link](javascript:alert(1)) and [data](data:text/html;base64,PHNjcmlwdD4=) and <javascript:alert(2)>.

## S1 Numbers
| Year | Value |
|---|---|
| 2022 | 10 [{B}] |
| 2023 | 12 |

```
code [{A}] stays literal
```

## Sources used
https://evil.example/invented
"""


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str]] = []
        self._open: dict[str, str] | None = None
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "a":
            self._open = {k: v or "" for k, v in attrs} | {"text": ""}
            self.anchors.append(self._open)

    def handle_endtag(self, tag):
        if tag == "a":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def parse(html: str) -> Anchors:
    parser = Anchors()
    parser.feed(html)
    return parser


def render(report: str, sources: list, *, question: str = "T", **extra) -> tuple[str, str]:
    return report_markdown(question, report, sources, **extra), report_html(question, report, sources, **extra)


@pytest.fixture
def document() -> tuple[str, str]:
    result = check_citations(REPORT, RETRIEVED)  # the write node's one citation pass
    extra = {"plan": "## SQ1\nplan [https://b.org/page]", "meta": {"model": "Fathom-Synthesizer-4B", "run": "r-1"}}
    return render(result.text, result.sources, question=QUESTION, **extra)


# ---- Markdown -------------------------------------------------------------------------------------------


def test_markdown_document(document):
    markdown, _ = document
    assert markdown.startswith("# What happened in \\<b\\>2023\\</b\\>?\n\n## Executive Summary\n")
    assert "\n## Main Body\n" in markdown and "\n## S1 Numbers\n" in markdown  # single h1 flattened
    assert markdown.count("## Sources used") == 1
    titled = f"## Sources used\n\n1. {C}\n2. [Plant history](<{A}>)\n3. [Growth \\<b\\>\\[2022\\]\\</b\\>](<{B}>)\n"
    assert titled in markdown
    assert "evil.example" not in markdown
    assert "## Appendix: research plan\n\n### SQ1\nplan" in markdown
    assert markdown.endswith("## Run details\n\n- **model**: Fathom-Synthesizer-4B\n- **run**: r-1\n")


def test_renderings_use_the_stored_result_without_checking_again():
    """Markdown and HTML render the write node's result as stored: a citation it kept stays,
    even one that a fresh check against fewer URLs would drop (nothing is checked twice)."""
    result = check_citations(f"Fact. [{A}] Other. [{B}]", RETRIEVED)
    markdown, html = render(result.text, result.sources[:1])
    assert f"Fact. [{A}] Other. [{B}]" in markdown and markdown.count("## Sources used") == 1
    assert [a["href"] for a in parse(html).anchors if a.get("class") == "cite"] == [A]


def test_a_report_stored_before_titles_renders_once():
    """Runs recorded earlier stored bare URLs as sources: their source list is not duplicated."""
    old = f"Fact. [{A}]\n\n## Sources used\n\n1. {A}\n"
    summary = {"run_id": "r", "rounds": 1, "question": "Q", "report": old, "citations": {"sources": [A]}}
    markdown = report_document(summary, "md")
    assert markdown.count("## Sources used") == 1 and f"1. {A}" in markdown
    assert 'id="source-1"' in report_document(summary, "html")


def test_markdown_shifts_all_headings_when_several_h1():
    result = check_citations("# One\ntext\n# Two\n## Two.a", [])
    markdown = report_markdown("Q", result.text, result.sources)
    assert "\n## One\n" in markdown and "\n## Two\n" in markdown and "\n### Two.a\n" in markdown


# ---- HTML -----------------------------------------------------------------------------------------------


def test_html_is_standalone_with_styles(document):
    _, html = document
    assert html.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert "<title>What happened in &lt;b&gt;2023&lt;/b&gt;?</title>" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "<table>" in html and "th,td{" in html
    assert "<b>" not in html


def test_no_script_injection_from_report_text(document):
    _, html = document
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;" in html
    assert "onerror" not in [tag for tag in parse(html).tags]
    assert "<img" not in html and "&lt;img src=x onerror" in html


def test_citations_are_numbered_links_matching_the_sources(document):
    _, html = document
    anchors = parse(html).anchors
    cites = [(a["text"], a["href"]) for a in anchors if a.get("class") == "cite"]
    # executive summary, grouped claim, table cell, then the plan's citation
    assert cites == [("[1]", C), ("[2]", A), ("[3]", B), ("[2]", A), ("[3]", B), ("[3]", B)]
    sources = re.search(r'<ol class="sources">(.*?)</ol>', html, re.DOTALL).group(1)
    listed = re.findall(r'<li id="source-(\d+)"><a href="([^"]+)"[^>]*>([^<]*)</a>', sources)
    assert [(n, href.replace("&amp;", "&"), title) for n, href, title in listed] == [
        ("1", C, C), ("2", A, "Plant history"), ("3", B, "Growth &lt;b&gt;[2022]&lt;/b&gt;")]
    assert f'<a href="{A.replace("&", "&amp;")}" class="cite" rel="noopener noreferrer">[2]</a>' in html


def test_javascript_and_other_schemes_never_linked(document):
    _, html = document
    hrefs = [a["href"] for a in parse(html).anchors]
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs)
    assert "javascript:" not in " ".join(hrefs) and "data:" not in " ".join(hrefs)


def test_unchecked_markdown_still_safe():
    markdown = (
        "# T\nA [x](javascript:alert(1)) [y](JaVaScRiPt:alert(1)) <javascript:alert(1)> [javascript:alert(1)] "
        "![i](https://img.example/p.png) [ok](https://ok.example/) [https://ok.example/] <b onclick=x>b</b>\n"
    )
    _, html = render(markdown, [{"url": "https://ok.example/", "title": "OK"}, {"url": "javascript:alert(1)", "title": "x"}])
    hrefs = [a["href"] for a in parse(html).anchors]
    assert hrefs == ["https://ok.example/", "https://ok.example/", "https://ok.example/"]  # link, cite, list
    assert "<img" not in html and "<b " not in html and "onclick" not in [t for t in parse(html).tags]


def test_citation_numbers_follow_the_sources_given():
    _, html = render(f"x [{B}] y [{A}] z [{B}]\n", [{"url": A, "title": "a"}, {"url": B, "title": "b"}])
    cites = [(a["text"], a["href"]) for a in parse(html).anchors if a.get("class") == "cite"]
    assert cites == [("[2]", B), ("[1]", A), ("[2]", B)]


def test_unlisted_citation_stays_text_and_code_is_literal(document):
    _, html = document
    assert "code [https://a.com/x?p=1&amp;q=2] stays literal" in html  # inside <pre><code>
    # the plan cites B, which is listed, so it is linked with B's number
    assert re.search(r"plan <a href=\"https://b.org/page\" class=\"cite\"[^>]*>\[3\]</a>", html)
    _, html = render(f"x [{A}]\n", [{"url": B, "title": ""}])
    assert f"x [{A.replace('&', '&amp;')}]" in html


# ---- a real browser (optional) ------------------------------------------------------------------------

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)


@pytest.mark.skipif(CHROMIUM is None, reason="needs /usr/bin/chromium (headless)")
def test_chromium_renders_citation_links(document, tmp_path):
    _, html = document
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={tmp_path / 'shot.png'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    shot = (tmp_path / "shot.png").read_bytes()
    assert shot.startswith(b"\x89PNG") and len(shot) > 1000  # the page really rendered
    dom = parse(proc.stdout)
    cites = [(a["text"], a["href"]) for a in dom.anchors if a.get("class") == "cite"]
    assert cites == [("[1]", C), ("[2]", A), ("[3]", B), ("[2]", A), ("[3]", B), ("[3]", B)]
    assert "script" not in dom.tags


def test_degenerate_input_terminates():
    # a small model stuck repeating itself must not stall the renderer (no backtracking blow-up)
    evil = "[" + "https://a" * 2000 + " x\n" + "[https://a " * 2000
    assert "https://a" in report_html("T", evil, [{"url": "https://a", "title": ""}])
    assert "https://a" in check_citations(evil, ["https://a"]).text

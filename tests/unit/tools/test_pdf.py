"""PDF reading: pypdf text, page and character caps, damaged and protected files, and query_url
on a PDF served by the fake web. The PDFs are written by hand in the test (tests/fakes/pdf.py)."""

from __future__ import annotations

import pytest

from fathom.app.services import toolbox
from fathom.settings import Settings
from fathom.tools.extract import ExtractError, extract
from fathom.tools.fetch import Page
from fathom.tools.media import MediaKind
from fathom.tools.pdf import PdfError, pdf_to_text
from tests.fakes.pdf import make_pdf
from tests.fakes.web import FakeWeb

REPORT = make_pdf(
    [
        ["Kestrel Bridge engineering survey", "Prepared for the Rivertown council."],
        ["Findings", "The main span is 62 metres long.", "The bridge opened on 14 June 1897 after",
         "infor-", "mation from the archive was checked."],
    ],
    title="Kestrel Bridge Survey",
)


def pdf_page(body: bytes, *, truncated: bool = False) -> Page:
    return Page(url="https://x.test/survey.pdf", final_url="https://x.test/survey.pdf", status=200,
                content_type="application/pdf", kind=MediaKind.PDF, body=body, truncated=truncated)


def test_pdf_text_title_and_page_sections() -> None:
    doc = extract(pdf_page(REPORT))
    assert doc.title == "Kestrel Bridge Survey"
    assert doc.text.startswith("## Page 1\n\nKestrel Bridge engineering survey\nPrepared for the Rivertown council.")
    assert "## Page 2\n\nFindings\nThe main span is 62 metres long." in doc.text
    assert "information from the archive" in doc.text  # a word hyphenated across lines is joined
    assert doc.url == "https://x.test/survey.pdf" and not doc.truncated


def test_page_cap_says_what_was_left_out() -> None:
    pages = [[f"Page text number {n}."] for n in range(1, 61)]
    title, text = pdf_to_text(make_pdf(pages), max_pages=50)
    assert "Page text number 50." in text and "Page text number 51." not in text
    assert text.endswith("[note: only the first 50 of 60 pages were read]")
    assert title == ""


def test_character_cap() -> None:
    pages = [["x" * 80] * 30 for _ in range(5)]  # 2,400 characters a page
    _, text = pdf_to_text(make_pdf(pages), max_chars=3000)
    assert "## Page 2" in text and "## Page 3" not in text  # stopped once the cap was reached
    assert text.endswith("[note: the text was cut at 3,000 characters]")
    assert len(text) < 3100


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"%PDF-1.4\n%fake\n", r"^the PDF could not be read \("),
        (REPORT[: len(REPORT) // 2], r"^the PDF could not be read"),
        (make_pdf([["secret"]], encrypt_marker=True), r"^it is a password-protected PDF$"),
        (make_pdf([[], []]), r"no text layer \(it may be scanned images\)"),
    ],
)
def test_unreadable_pdfs_are_clear_errors(body: bytes, message: str) -> None:
    with pytest.raises(ExtractError, match=message):
        extract(pdf_page(body))
    with pytest.raises(PdfError):
        pdf_to_text(body)


def test_a_pdf_cut_at_the_download_limit_says_so() -> None:
    with pytest.raises(ExtractError, match="cut at the download size limit"):
        extract(pdf_page(REPORT[:200], truncated=True))


@pytest.fixture
def web():
    with FakeWeb() as fake:
        fake.add_page("/survey.pdf", REPORT, "application/pdf")
        fake.add_page("/untyped", REPORT, None)
        yield fake


@pytest.mark.parametrize("path", ["/survey.pdf", "/untyped"])
async def test_query_url_reads_a_pdf(web: FakeWeb, path: str) -> None:
    settings = Settings(allow_hosts=(web.hostport,), fetch_timeout_s=5.0, tool_timeout_s=10.0)
    async with toolbox(settings, search_backend=_NoSearch()) as tools:
        outcome = await tools.query_url(web.url(path), "How long is the main span of the Kestrel Bridge?")
    assert outcome.ok, outcome.text
    assert "The main span is 62 metres long." in outcome.text
    assert outcome.sources[0]["title"] == "Kestrel Bridge Survey"


class _NoSearch:
    name = "none"

    async def search(self, query: str, top_k: int) -> list:
        return []

    async def aclose(self) -> None:
        return None

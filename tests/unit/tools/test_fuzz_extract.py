"""Fuzzing text extraction: malformed and adversarial HTML, PDF and office documents (deep
nesting, huge attributes, inflating streams, forms drawn thousands of times, broken archives) give
a Document or a clear ExtractError, never another exception, and their text stays within its caps.

Time and memory per document are measured by ``bench/fuzz.py`` (it prints the worst case per
target); here the caps that bound them are checked: text length, pages and operators read.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fathom.tools import office, pdf
from fathom.tools.extract import Document, ExtractError, extract
from fathom.tools.fetch import Page
from fathom.tools.media import MediaKind
from tests.support.fuzz import _page_pdf, _pdf, _stream, html_documents, office_documents, pdf_documents

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                database=None, derandomize=True)
NOTE_ROOM = 400  # the "[note: …]" a capped text ends with


def page_of(kind: MediaKind, body: bytes) -> Page:
    types = {MediaKind.HTML: "text/html", MediaKind.PDF: "application/pdf",
             MediaKind.OFFICE: "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
    return Page(url="https://x.test/d", final_url="https://x.test/d", status=200, content_type=types[kind], kind=kind,
                body=body)


def check_extract(kind: MediaKind, body: bytes) -> Document | None:
    """A Document within its caps, or None for a clear refusal (an ExtractError with a reason)."""
    try:
        doc = extract(page_of(kind, body))
    except ExtractError as exc:
        assert str(exc).strip() and "\n" not in str(exc)
        return None
    assert doc.text.strip()
    if kind is MediaKind.PDF:
        assert len(doc.text) <= pdf.MAX_CHARS + pdf.MAX_PAGES * 20 + NOTE_ROOM
    elif kind is MediaKind.OFFICE:
        assert len(doc.text) <= office.MAX_CHARS + NOTE_ROOM
    return doc


@FUZZ
@given(html_documents())
def test_any_html_is_text_or_a_clear_refusal(markup: str) -> None:
    check_extract(MediaKind.HTML, markup.encode("utf-8", "replace"))


@pytest.fixture
def small_pdf_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work caps lowered, so that a case that reaches them is quick (bench/fuzz.py keeps them)."""
    monkeypatch.setattr(pdf, "MAX_OPERATIONS", 20_000)
    monkeypatch.setattr(pdf, "MAX_PAGE_CONTENT", 200_000)


@settings(FUZZ, max_examples=80, suppress_health_check=[*FUZZ.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(data=pdf_documents())
def test_any_pdf_is_text_or_a_clear_refusal(small_pdf_budget: None, data: bytes) -> None:
    check_extract(MediaKind.PDF, data)


@FUZZ
@given(office_documents())
def test_any_office_file_is_text_or_a_clear_refusal(data: bytes) -> None:
    check_extract(MediaKind.OFFICE, data)


# ---- the case fuzzing found: a tiny PDF that cost minutes of CPU -------------------------------------


def _form_drawn(times: int, lines: int) -> bytes:
    """A one-page PDF whose content draws a form of ``lines`` text lines ``times`` times."""
    form = _stream(b"BT /F1 11 Tf 72 720 Td " + b"(aaaaaaaa) Tj T* " * lines + b"ET", True).replace(
        b"<< ", b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> ", 1)
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> "
        b"/XObject << /X1 6 0 R >> >> /Contents 4 0 R >>",
        _stream(b"/X1 Do " * times, True),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        form,
    ])


def test_a_form_drawn_thousands_of_times_is_read_within_the_operator_budget(monkeypatch) -> None:
    """941 bytes that drew a 1,000-line form 5,000 times took 230 s; reading now stops at the
    operator budget (lowered here so that the test is quick) and says so."""
    monkeypatch.setattr(pdf, "MAX_OPERATIONS", 3_000)
    title, text = pdf.pdf_to_text(_form_drawn(times=100, lines=100))  # 20,000 operators in all
    assert text.startswith("## Page 1\n\naaaaaaaa")
    assert text.endswith("[note: reading stopped at page 1: the document takes too much work to read]")
    assert 3_000 < len(text) < 20_000  # ~1,500 of the 10,000 lines drawn: 9 characters each


def test_a_page_whose_drawing_inflates_past_the_cap_is_skipped(monkeypatch) -> None:
    monkeypatch.setattr(pdf, "MAX_PAGE_CONTENT", 10_000)
    huge = _page_pdf(b"BT /F1 11 Tf 72 720 Td " + b"(aaaaaaaa) Tj " * 2_000 + b"ET", 1, True, False)
    with pytest.raises(pdf.PdfError, match="^the PDF's pages are too large to read$"):
        pdf.pdf_to_text(huge)
    two = _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        _stream(b"BT /F1 11 Tf 72 720 Td " + b"(aaaaaaaa) Tj " * 2_000 + b"ET", True),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 7 0 R >>",
        _stream(b"BT /F1 11 Tf 72 720 Td (The span is 62 metres.) Tj ET", False),
    ])
    title, text = pdf.pdf_to_text(two)
    assert text == "## Page 2\n\nThe span is 62 metres.\n\n[note: page(s) 1 skipped, their drawing too large to read]"


# ---- the cases fuzzing found in HTML nested past the tree limit (read as words only) -------------


@pytest.mark.parametrize(("markup", "text"), [
    # each unclosed <template> rescanned the rest of the page for its closing tag: 50,000 took minutes
    ("<div>" * 2_100 + "<template>" * 50_000 + "kept words", "kept words"),
    ("<div>" * 2_100 + "Before<template>" * 20_000 + "after", "Before\n\n" * 19_999 + "Before\n\nafter"),
    # each "<" with no ">" after it scanned to the end of the page
    ("<div>" * 2_100 + "x" + "<" * 100_000, "x" + "<" * 100_000),
    # closed ones still go, whatever their case, with what they hold
    ("<div>" * 2_100 + "a<SCRIPT src=x>var s;</script >b<style>p{}</STYLE>c<template>t", "a\n\nb\n\nc\n\nt"),
])
def test_a_page_too_deep_for_a_tree_keeps_its_words_in_one_pass(markup: str, text: str) -> None:
    doc = check_extract(MediaKind.HTML, markup.encode())
    assert doc is not None and doc.text == text

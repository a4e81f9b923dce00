"""Office documents (Word, Excel, PowerPoint, EPUB) read as text, from the web and from the corpus.

The files are written by the same libraries that read them (python-docx, openpyxl, python-pptx,
EbookLib), served by the fake web with their real media types, and read through the fetcher.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fathom.store.corpus import Corpus, file_url
from fathom.tools.extract import ExtractError, extract
from fathom.tools.fetch import Fetcher
from fathom.tools.media import MediaKind
from fathom.tools.office import office_to_text
from tests.fakes.web import FakeWeb

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "Bridge survey 2024"
    document.add_heading("Inspection findings", level=1)
    document.add_paragraph("The east footway showed corrosion on 14 of 220 rivets.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Span", "Rating"
    table.cell(1, 0).text, table.cell(1, 1).text = "Main", "B+"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_xlsx() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Tolls"
    sheet.append(["Year", "Crossings"])
    sheet.append([1898, 41250])
    book.create_sheet("Notes").append(["Tolls were abolished in 1921."])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Restoration plan"
    slide.placeholders[1].text = "Replace 1,200 rivets by 2006"
    slide.notes_slide.notes_text_frame.text = "Budget approved in March 2003."
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_epub() -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("kestrel-1")
    book.set_title("A History of Rivertown")
    book.set_language("en")
    chapter = epub.EpubHtml(title="The Bridge", file_name="bridge.xhtml", lang="en")
    chapter.content = "<h1>The Bridge</h1><p>Harriet Molyneux designed the Kestrel Bridge in 1893.</p>"
    book.add_item(chapter)
    book.toc = [chapter]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [chapter]
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


@pytest.fixture
async def fetcher(web: FakeWeb) -> AsyncIterator[Fetcher]:
    async with Fetcher(allow_hosts=[web.hostport], timeout_s=5) as f:
        yield f


@pytest.mark.parametrize(
    "path, content_type, make, title, expected",
    [
        ("/survey.docx", DOCX, make_docx, "Bridge survey 2024",
         ["# Inspection findings", "corrosion on 14 of 220 rivets", "| Main | B+ |"]),
        ("/tolls.xlsx", XLSX, make_xlsx, "", ["## Sheet: Tolls", "| 1898 | 41250 |", "## Sheet: Notes", "abolished in 1921"]),
        ("/plan.pptx", PPTX, make_pptx, "", ["## Slide 1", "Restoration plan", "Replace 1,200 rivets by 2006",
                                             "Notes: Budget approved in March 2003."]),
        ("/history.epub", "application/epub+zip", make_epub, "A History of Rivertown",
         ["# The Bridge", "Harriet Molyneux designed the Kestrel Bridge in 1893."]),
        # A generic type: the extension says what it is, the archive's parts which format.
        ("/download.docx", "application/octet-stream", make_docx, "Bridge survey 2024", ["corrosion on 14 of 220 rivets"]),
    ],
)
async def test_office_files_on_the_web_are_read_as_text(
    fetcher: Fetcher, web: FakeWeb, path: str, content_type: str, make, title: str, expected: list[str]
) -> None:
    web.add_page(path, make(), content_type)
    page = await fetcher.fetch(web.url(path))
    assert page.kind is MediaKind.OFFICE
    doc = extract(page)
    assert doc.title == title
    for text in expected:
        assert text in doc.text


def test_a_zip_that_is_no_office_document_says_so() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(ExtractError, match="a zip archive, not a Word, Excel, PowerPoint or EPUB document"):
        from fathom.tools.fetch import Page

        extract(Page(url="u", final_url="u", status=200, content_type=DOCX, kind=MediaKind.OFFICE, body=out.getvalue()))


def test_a_cut_office_file_says_it_was_cut() -> None:
    from fathom.tools.office import OfficeError

    with pytest.raises(OfficeError, match="cut at the download size limit"):
        office_to_text(make_docx()[:3000], cut=True)


async def test_legacy_binary_office_files_are_still_refused(fetcher: Fetcher, web: FakeWeb) -> None:
    web.add_page("/old.doc", b"\xd0\xcf\x11\xe0" + b"\x00" * 100, "application/msword")
    page = await fetcher.fetch(web.url("/old.doc"))
    assert page.kind is MediaKind.BINARY


async def test_the_local_corpus_indexes_office_files(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "survey.docx").write_bytes(make_docx())
    (docs / "tolls.xlsx").write_bytes(make_xlsx())
    async with Corpus.open(f"sqlite+aiosqlite:///{tmp_path / 'corpus.db'}") as corpus:
        report = await corpus.index(docs)
        assert report.added == 2 and not report.failed
        doc = await corpus.read(file_url(docs / "survey.docx"))
        assert doc.title == "Bridge survey 2024" and "corrosion on 14 of 220 rivets" in doc.text
        assert "| 1898 | 41250 |" in (await corpus.read(file_url(docs / "tolls.xlsx"))).text

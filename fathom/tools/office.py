"""Text of office documents: Word (.docx), Excel (.xlsx), PowerPoint (.pptx) and EPUB books.

The format is told by the archive's own parts (``word/document.xml``, ``xl/workbook.xml``…), not
by the URL. The converters are python-docx, openpyxl, python-pptx and EbookLib; headings become
markdown headings (one ``## Sheet``/``## Slide``/chapter section each), tables become ``|`` rows.
Like PDF text, the result is capped (:data:`MAX_CHARS`), and an archive that would unpack to more
than :data:`MAX_UNPACKED_BYTES` is refused unread (a zip bomb costs nothing then).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from fathom.tools.base import ToolError
from fathom.tools.html_text import html_to_text

MAX_CHARS = 200_000
MAX_UNPACKED_BYTES = 200_000_000
MAX_ROWS = 2_000  # per spreadsheet sheet


class OfficeError(ToolError):
    """The document cannot be read; the message says why (without the URL)."""


def office_to_text(data: bytes, *, cut: bool = False) -> tuple[str, str]:
    """``(title, text)`` of a .docx, .xlsx, .pptx or .epub file; raises :class:`OfficeError`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        hint = "; it was cut at the download size limit" if cut else ""
        raise OfficeError(f"it is not a readable office document (not a valid zip archive){hint}") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise OfficeError(f"the document unpacks to more than {MAX_UNPACKED_BYTES:,} bytes")
    if "word/document.xml" in names:
        convert, package = _docx, "python-docx"
    elif "xl/workbook.xml" in names:
        convert, package = _xlsx, "openpyxl"
    elif "ppt/presentation.xml" in names:
        convert, package = _pptx, "python-pptx"
    elif "META-INF/container.xml" in names:
        convert, package = _epub, "ebooklib"
    else:
        raise OfficeError("it is a zip archive, not a Word, Excel, PowerPoint or EPUB document")
    try:
        title, text = convert(data)
    except ImportError:
        raise OfficeError(f"reading this document needs {package}: pip install {package}") from None
    except Exception as exc:  # the converters raise many kinds on damaged files; all mean "unreadable"
        why = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise OfficeError(f"the document could not be read ({why})") from None
    text = text.strip()
    if not text:
        raise OfficeError("the document has no text")
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + f"\n\n[note: the text was cut at {MAX_CHARS:,} characters]"
    return " ".join(title.split()), text


def _row(cells: Iterable[Any]) -> str:
    values = ["" if c is None else " ".join(str(c).split()) for c in cells]
    while values and not values[-1]:
        values.pop()
    return "| " + " | ".join(values) + " |" if any(values) else ""


def _docx(data: bytes) -> tuple[str, str]:
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    out: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = [_row(cell.text for cell in row.cells) for row in block.rows]
            out.append("\n".join(r for r in rows if r))
            continue
        text = block.text.strip()
        style = (block.style.name if block.style is not None else "") or ""
        if text and style.startswith("Heading") and style[-1:].isdigit():
            out.append("#" * min(6, int(style[-1])) + " " + text)
        elif text and style == "Title":
            out.append("# " + text)
        elif text:
            out.append(("- " if "List" in style else "") + text)
    return document.core_properties.title or "", "\n\n".join(out)


def _xlsx(data: bytes) -> tuple[str, str]:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        out: list[str] = []
        for sheet in book.worksheets:
            rows = [r for r in (_row(values) for values in _first(sheet.iter_rows(values_only=True), MAX_ROWS)) if r]
            if rows:
                more = f"\n\n[note: only the first {MAX_ROWS:,} rows were read]" if sheet.max_row and sheet.max_row > MAX_ROWS else ""
                out.append(f"## Sheet: {sheet.title}\n\n" + "\n".join(rows) + more)
        return book.properties.title or "", "\n\n".join(out)
    finally:
        book.close()


def _pptx(data: bytes) -> tuple[str, str]:
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    out: list[str] = []
    for number, slide in enumerate(deck.slides, 1):
        texts: list[str] = []
        for shape in slide.shapes:
            if getattr(shape, "has_table", False) and shape.has_table:
                texts.append("\n".join(r for r in (_row(c.text for c in row.cells) for row in shape.table.rows) if r))
            elif getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
                texts.append(shape.text_frame.text.strip())
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                texts.append(f"Notes: {notes}")
        if texts:
            out.append(f"## Slide {number}\n\n" + "\n\n".join(texts))
    return deck.core_properties.title or "", "\n\n".join(out)


def _epub(data: bytes) -> tuple[str, str]:
    import ebooklib
    from ebooklib import epub

    book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
    out: list[str] = []
    size = 0
    for item_id, _linear in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        heading, text = html_to_text(item.get_content().decode("utf-8", errors="replace"))
        if text.strip():
            out.append(text if text.lstrip().startswith("#") or not heading else f"## {heading}\n\n{text}")
            size += len(text)
        if size > MAX_CHARS:
            break
    titles = book.get_metadata("DC", "title")
    return (str(titles[0][0]) if titles else ""), "\n\n".join(out)


def _first(rows: Iterator[Any], limit: int) -> Iterator[Any]:
    for index, row in enumerate(rows):
        if index >= limit:
            return
        yield row

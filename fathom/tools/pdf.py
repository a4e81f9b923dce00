"""Text of PDF documents, with pypdf: capped in pages and characters, one ``## Page N`` section a page.

Page headings make every passage say where it comes from ("[Section: Page 12]"), and the caps keep
a 900-page report from costing minutes of CPU: only the first :data:`MAX_PAGES` pages are read,
and reading stops at :data:`MAX_CHARS` characters. The text says when either cap cut it.
"""

from __future__ import annotations

import io
import logging
import re

from fathom.tools.base import ToolError

MAX_PAGES = 50
MAX_CHARS = 200_000
_HYPHENATED = re.compile(r"(\w)-\n(\w)")  # "infor-\nmation" -> "information"
_TRAILING = re.compile(r"[ \t]+\n")
_BLANKS = re.compile(r"\n{3,}")


class PdfError(ToolError):
    """The PDF cannot be read; the message says why (without the URL)."""


def pdf_to_text(data: bytes, *, max_pages: int = MAX_PAGES, max_chars: int = MAX_CHARS,
                cut: bool = False) -> tuple[str, str]:
    """``(title, text)`` of a PDF. ``cut`` says the bytes stop at a download limit (for the message).

    Raises :class:`PdfError` for a file that is not a readable PDF, is password-protected, or has
    no text layer (a scan).
    """
    try:
        from pypdf import PdfReader
    except ImportError:
        raise PdfError("it is a PDF document, and reading PDF needs pypdf: pip install pypdf") from None
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # broken-but-readable files warn per object
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfError("it is a password-protected PDF")
        total = len(reader.pages)
        pages: list[str] = []
        size = 0
        for number in range(min(total, max_pages)):
            text = _clean(reader.pages[number].extract_text() or "")
            if text:
                pages.append(f"## Page {number + 1}\n\n{text}")
                size += len(text)
            if size >= max_chars:
                break
        title = _title(reader)
    except PdfError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files; all mean "unreadable"
        why = " ".join(str(exc).split())[:200] or type(exc).__name__
        hint = "; it was cut at the download size limit" if cut else ""
        raise PdfError(f"the PDF could not be read ({why}){hint}") from None
    text = "\n\n".join(pages)
    if not text.strip():
        raise PdfError("the PDF has no text layer (it may be scanned images)")
    notes = []
    if size >= max_chars:
        text = text[:max_chars]
        notes.append(f"the text was cut at {max_chars:,} characters")
    if total > max_pages:
        notes.append(f"only the first {max_pages} of {total} pages were read")
    if notes:
        text += f"\n\n[note: {'; '.join(notes)}]"
    return title, text


def _clean(text: str) -> str:
    text = text.replace("\u00a0", " ").replace("\r\n", "\n").replace("\r", "\n")
    text = _HYPHENATED.sub(r"\1\2", text)
    return _BLANKS.sub("\n\n", _TRAILING.sub("\n", text)).strip()


def _title(reader: object) -> str:
    try:
        title = getattr(getattr(reader, "metadata", None), "title", None)
    except Exception:  # a damaged info dictionary must not lose the text we already have
        return ""
    return " ".join(str(title).split()) if title else ""

"""Text of PDF documents, with pypdf: capped in pages and characters, one ``## Page N`` section a page.

Page headings make every passage say where it comes from ("[Section: Page 12]"), and the caps keep
a 900-page report from costing minutes of CPU: only the first :data:`MAX_PAGES` pages are read,
and reading stops at :data:`MAX_CHARS` characters. The text says when either cap cut it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator
from typing import Any

from fathom.tools.base import ToolError

MAX_PAGES = 50
MAX_CHARS = 200_000
# The work a file may cost, whatever its size on the wire: a page whose drawing instructions inflate
# past MAX_PAGE_CONTENT bytes is skipped unread, and reading stops after MAX_OPERATIONS content
# operators (a form drawn again counts again). A 941-byte file that draws a 1,000-line form 5,000
# times cost 230 s of CPU before (found by fuzzing); real documents use a fraction of either.
MAX_PAGE_CONTENT = 2_000_000
MAX_OPERATIONS = 500_000
MAX_INFLATED = 16_000_000  # bytes one stream may inflate to (pypdf's own cap is 75 MB)
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
    with _inflation_cap():
        return _read(PdfReader, data, max_pages=max_pages, max_chars=max_chars, cut=cut)


@contextlib.contextmanager
def _inflation_cap() -> Iterator[None]:
    """pypdf's cap on the bytes one stream may inflate to, lowered where this pypdf has one."""
    import pypdf

    apply = getattr(pypdf, "apply_configuration", None)  # pypdf >= 6
    if apply is None:
        yield
        return
    with apply(zlib_maximum_output_length=MAX_INFLATED):
        yield


def _read(reader_class: Any, data: bytes, *, max_pages: int, max_chars: int, cut: bool) -> tuple[str, str]:
    try:
        reader = reader_class(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfError("it is a password-protected PDF")
        total = len(reader.pages)
        pages: list[str] = []
        size = 0
        budget = _Budget(max_chars)
        skipped: list[int] = []
        for number in range(min(total, max_pages)):
            page = reader.pages[number]
            if _content_size(page) > MAX_PAGE_CONTENT:
                skipped.append(number + 1)
                continue
            text = _clean(budget.page_text(page))
            if text:
                pages.append(f"## Page {number + 1}\n\n{text}")
                size += len(text)
            if size >= max_chars or budget.spent or budget.chars_left < 0:
                break
        title = _title(reader)
    except PdfError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files; all mean "unreadable"
        why = " ".join(str(exc).split())[:200] or type(exc).__name__
        hint = "; it was cut at the download size limit" if cut else ""
        raise PdfError(f"the PDF could not be read ({why}){hint}") from None
    text = "\n\n".join(pages)
    if not text.strip() and skipped:
        raise PdfError("the PDF's pages are too large to read")
    if not text.strip():
        raise PdfError("the PDF has no text layer (it may be scanned images)")
    notes = []
    if size >= max_chars:
        text = text[:max_chars]
        notes.append(f"the text was cut at {max_chars:,} characters")
    if budget.spent and size < max_chars:
        notes.append(f"reading stopped at page {number + 1}: the document takes too much work to read")
    if skipped:
        notes.append(f"page(s) {', '.join(map(str, skipped))} skipped, their drawing too large to read")
    if total > max_pages:
        notes.append(f"only the first {max_pages} of {total} pages were read")
    if notes:
        text += f"\n\n[note: {'; '.join(notes)}]"
    return title, text


class _OverBudget(BaseException):
    """Raised from pypdf's operator callback to stop reading. A BaseException, because pypdf
    catches any Exception while it draws a form and goes on with the next operator."""


class _Budget:
    """Operators interpreted and characters kept so far, across the pages of one document."""

    def __init__(self, max_chars: int) -> None:
        self.operations = 0
        self.chars_left = max_chars
        self.spent = False

    def page_text(self, page: Any) -> str:
        """The page's text; when the budget runs out on it (or enough text is in), the text it had
        shown by then."""
        pieces: list[str] = []

        def count(*_: Any) -> None:
            self.operations += 1
            if self.operations > MAX_OPERATIONS or self.chars_left < 0:
                raise _OverBudget

        def keep(text: str, *_: Any) -> None:
            pieces.append(text)
            self.chars_left -= len(text)

        try:
            text = page.extract_text(visitor_operand_before=count, visitor_text=keep) or ""
        except _OverBudget:
            self.spent = self.operations > MAX_OPERATIONS
            text = "".join(pieces)
        return text


def _content_size(page: Any) -> int:
    """Bytes of the page's own drawing instructions, inflated; past pypdf's inflation cap, more
    than any page may have."""
    from pypdf import errors

    try:
        contents = page.get_contents()
        return len(contents.get_data()) if contents is not None else 0
    except getattr(errors, "LimitReachedError", ()):  # pypdf >= 4.3
        return MAX_PAGE_CONTENT + 1


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

"""Turn a fetched :class:`~fathom.tools.fetch.Page` into readable text (a :class:`Document`).

HTML becomes light markdown without its site chrome (:mod:`fathom.tools.html_text`).
Plain text, markdown and JSON are kept as they are; PDF text comes from :mod:`fathom.tools.pdf`
(page- and character-capped), office documents' from :mod:`fathom.tools.office`. Binary files are refused with a reason the model can act on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fathom.tools.base import ToolError
from fathom.tools.fetch import Page
from fathom.tools.html_text import html_to_text
from fathom.tools.media import MediaKind
from fathom.tools.office import OfficeError, office_to_text
from fathom.tools.pdf import PdfError, pdf_to_text


class ExtractError(ToolError):
    """The page holds nothing we can read; the message says why (without the URL)."""


@dataclass(frozen=True)
class Document:
    """Readable text of one page."""

    url: str
    title: str
    text: str
    truncated: bool = False  # the body was cut at the fetch size cap
    # what the model must read with any passage of it ("an archived snapshot, not the live page")
    note: str = ""


def extract(page: Page) -> Document:
    """Readable text of ``page``; raises :class:`ExtractError` for binary, unreadable or empty pages."""
    if page.kind is MediaKind.BINARY:
        raise ExtractError(f"it is a binary file ({page.media_type}); it cannot be read")
    if page.kind is MediaKind.PDF:
        try:
            title, text = pdf_to_text(page.body, cut=page.truncated)
        except PdfError as exc:
            raise ExtractError(str(exc)) from None
    elif page.kind is MediaKind.OFFICE:
        try:
            title, text = office_to_text(page.body, cut=page.truncated)
        except OfficeError as exc:
            raise ExtractError(str(exc)) from None
    elif page.kind is MediaKind.HTML:
        title, text = html_to_text(page.text())
    elif page.kind is MediaKind.JSON:
        title, text = "", _pretty_json(page.text())
    else:
        title, text = "", _tidy_plain(page.text())
    if not text.strip():
        raise ExtractError("the page has no readable text")
    return Document(url=page.final_url, title=title, text=text, truncated=page.truncated)


# ---- text and JSON ----------------------------------------------------------------------


def _tidy_plain(text: str) -> str:
    """Plain text as is, minus trailing spaces and runs of blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _pretty_json(text: str) -> str:
    """JSON indented one space per level (so it splits into passages), or as is when invalid."""
    try:
        return json.dumps(json.loads(text), indent=1, ensure_ascii=False)
    except ValueError:
        return _tidy_plain(text)

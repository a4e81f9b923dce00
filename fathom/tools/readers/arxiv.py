"""arXiv: a paper's title, authors and abstract from its abstract page, then its text from the PDF.

``arxiv.org/abs/ID`` and ``arxiv.org/pdf/ID`` both read ``{arxiv_url}/abs/ID`` (the citation
``<meta>`` tags carry title and authors) and ``{arxiv_url}/pdf/ID`` (the full text, page-capped
by :mod:`fathom.tools.pdf`). When the PDF cannot be read, the abstract page is the document.
"""

from __future__ import annotations

import asyncio
import html
import re
from urllib.parse import quote

from fathom.tools.base import ToolError
from fathom.tools.extract import Document, extract
from fathom.tools.fetch import Fetcher
from fathom.tools.html_text import html_to_text
from fathom.tools.readers.base import ReaderError, ReaderNotes, host_in, path_segments

_META = re.compile(r"""<meta\s+name=["']citation_(title|author|abstract|date)["']\s+content=(?:"([^"]*)"|'([^']*)')""",
                   re.IGNORECASE)


class ArxivReader:
    """Reads arXiv papers from ``base_url`` (abstract page + PDF)."""

    name = "arxiv"

    def __init__(self, fetcher: Fetcher, *, base_url: str, notes: ReaderNotes, timeout_s: float = 45.0) -> None:
        self.fetcher, self.base_url, self.timeout_s = fetcher, base_url.rstrip("/"), timeout_s
        self.notes = notes

    def handles(self, host: str) -> bool:
        return host_in(host, "arxiv.org")

    async def read(self, url: str) -> Document | None:
        seg = path_segments(url)
        if len(seg) < 2 or seg[0] not in ("abs", "pdf"):
            return None
        paper = "/".join(seg[1:]).removesuffix(".pdf")
        abs_page, pdf = await asyncio.gather(
            self.fetcher.fetch(f"{self.base_url}/abs/{quote(paper)}"),
            self._pdf_text(paper),
            return_exceptions=True,
        )
        if isinstance(abs_page, BaseException):
            if not isinstance(abs_page, ToolError):
                raise abs_page
            raise ReaderError(f"the abstract page could not be read ({abs_page})")
        source = abs_page.text()
        meta: dict[str, list[str]] = {}
        for key, double, single in _META.findall(source):
            meta.setdefault(key.lower(), []).append(" ".join(html.unescape(double or single).split()))
        title = (meta.get("title") or [f"arXiv:{paper}"])[0]
        authors = ", ".join(meta.get("author", [])) or "unknown"
        head = [f"# {title}", "", f"arXiv:{paper} · authors: {authors}"]
        if meta.get("date"):
            head.append(f"Date: {meta['date'][0]}")
        if isinstance(pdf, str):
            body = pdf
        elif isinstance(pdf, ToolError):
            abstract = (meta.get("abstract") or [""])[0] or html_to_text(source)[1]
            body = f"{self.notes.arxiv_pdf(str(pdf))}\n\n{abstract}"
        else:
            raise pdf
        return Document(url=url, title=title, text="\n".join(head) + "\n\n" + body)

    async def _pdf_text(self, paper: str) -> str:
        page = await self.fetcher.fetch(f"{self.base_url}/pdf/{quote(paper)}")
        return (await asyncio.to_thread(extract, page)).text  # PDF parsing is CPU work

"""Jina's reader (``--reader jina``): ``{jina_url}/{url}`` renders the page elsewhere and answers
its text as markdown. ``JINA_API_KEY``, when set, is sent to ``jina_url`` only."""

from __future__ import annotations

from fathom.tools.extract import Document
from fathom.tools.fetch import Fetcher
from fathom.tools.readers.base import ReaderError

MIN_CHARS = 200  # shorter answers are Jina's error and captcha pages


class JinaReader:
    """Reads any web page through Jina's reader service."""

    name = "jina"

    def __init__(self, fetcher: Fetcher, *, base_url: str, api_key: str | None = None, timeout_s: float = 30.0) -> None:
        self.fetcher, self.base_url, self.timeout_s = fetcher, base_url.rstrip("/"), timeout_s
        self._headers = {"Accept": "text/plain", "X-Return-Format": "markdown"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def handles(self, host: str) -> bool:
        return True

    async def read(self, url: str) -> Document | None:
        page = await self.fetcher.fetch(f"{self.base_url}/{url}", headers=self._headers)
        text = page.text().strip()
        if len(text) < MIN_CHARS:
            raise ReaderError(f"the reader answered only {len(text)} characters")
        title = ""
        head, sep, body = text.partition("Markdown Content:")
        if sep:  # Jina's text layout: "Title: …\nURL Source: …\n\nMarkdown Content:\n…"
            for line in head.splitlines():
                if line.startswith("Title:"):
                    title = line[len("Title:"):].strip()
            text = body.strip()
        return Document(url=url, title=title, text=text, truncated=page.truncated)

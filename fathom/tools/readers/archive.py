"""The Internet Archive: the latest snapshot of a page that refused us (HTTP 401, 403 or 429).

The availability API (``{archive_url}/wayback/available?url=…``) names the closest snapshot; its
original bytes (the ``id_`` form of the snapshot URL, without the Wayback toolbar) are read and
extracted like any page, and the text opens with a note saying it is an archived copy and when
it was taken, so the model does not take it for the live page.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from urllib.parse import urlencode

from fathom.tools.extract import Document, extract
from fathom.tools.fetch import Fetcher
from fathom.tools.readers.base import ReaderError, ReaderNotes, get_json

_SNAPSHOT_PATH = re.compile(r"(/web/\d{14})(?:[a-z]{2}_)?/")


class ArchiveReader:
    """Reads a page's archived snapshot from the Wayback Machine at ``base_url``."""

    name = "archive.org"

    def __init__(self, fetcher: Fetcher, *, base_url: str, notes: ReaderNotes, timeout_s: float = 30.0) -> None:
        self.fetcher, self.base_url, self.timeout_s = fetcher, base_url.rstrip("/"), timeout_s
        self.notes = notes

    async def read(self, url: str, refusal: str) -> Document:
        """The snapshot's document, labelled; ``refusal`` is why the live page failed."""
        data = await get_json(self.fetcher, f"{self.base_url}/wayback/available?{urlencode({'url': url})}")
        closest = ((data.get("archived_snapshots") or {}).get("closest") or {}) if isinstance(data, dict) else {}
        snapshot = str(closest.get("url") or "")
        if not closest.get("available") or not snapshot.startswith(("http://", "https://")):
            raise ReaderError(self.notes.no_snapshot)
        if snapshot.startswith("http://web.archive.org/"):
            snapshot = "https://" + snapshot[len("http://"):]
        raw = _SNAPSHOT_PATH.sub(r"\1id_/", snapshot, count=1)  # the page as archived, no toolbar
        page = await self.fetcher.fetch(raw)
        doc = await asyncio.to_thread(extract, page)
        note = self.notes.archived(url, _when(str(closest.get("timestamp") or "")), refusal)
        return Document(url=url, title=doc.title, text=f"{note}\n\n{doc.text}", truncated=doc.truncated, note=note)


def _when(timestamp: str) -> str:
    try:
        return datetime.strptime(timestamp[:14], "%Y%m%d%H%M%S").strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return "an unknown date"

"""Wikipedia: an article's plain text through the MediaWiki API (TextExtracts), headings kept.

``xx.wikipedia.org/wiki/TITLE`` is read from ``{base}/w/api.php?action=query&prop=extracts&
explaintext=1``, where ``base`` is the article's own wiki unless a base URL is configured. The
``== Heading ==`` lines of the plain text become markdown headings, so passages keep their section.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlencode

from fathom.tools.extract import Document
from fathom.tools.fetch import Fetcher
from fathom.tools.readers.base import ReaderError, get_json, host_in, parts

_HEADING = re.compile(r"^(={2,6})\s*(.+?)\s*\1\s*$", re.MULTILINE)


class WikipediaReader:
    """Reads ``*.wikipedia.org/wiki/…`` articles as plain text."""

    name = "wikipedia"

    def __init__(self, fetcher: Fetcher, *, base_url: str | None = None, timeout_s: float = 20.0) -> None:
        self.fetcher, self.base_url, self.timeout_s = fetcher, base_url.rstrip("/") if base_url else None, timeout_s

    def handles(self, host: str) -> bool:
        return host_in(host, "wikipedia.org")

    async def read(self, url: str) -> Document | None:
        split = parts(url)
        if not split.path.startswith("/wiki/") or len(split.path) <= len("/wiki/"):
            return None
        title = unquote(split.path[len("/wiki/"):]).replace("_", " ")
        if ":" in title.split(" ", 1)[0]:  # Special:, Talk:, File: pages are not articles
            return None
        host = (split.hostname or "en.wikipedia.org").replace(".m.wikipedia.org", ".wikipedia.org")
        base = self.base_url or f"https://{host}"
        query = urlencode({"action": "query", "prop": "extracts", "explaintext": 1, "redirects": 1,
                           "titles": title, "format": "json", "formatversion": 2})
        data = await get_json(self.fetcher, f"{base}/w/api.php?{query}")
        pages = ((data or {}).get("query") or {}).get("pages") or [] if isinstance(data, dict) else []
        page = pages[0] if pages and isinstance(pages[0], dict) else {}
        if page.get("missing") or not page.get("extract"):
            raise ReaderError("Wikipedia has no article of that title")
        text = _HEADING.sub(lambda m: "#" * len(m.group(1)) + " " + m.group(2), str(page["extract"]))
        name = str(page.get("title") or title)
        return Document(url=url, title=name, text=f"# {name}\n\n{text.strip()}")

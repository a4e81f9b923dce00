"""A headless browser (Playwright driving Debian's Chromium) for pages whose text JavaScript writes.

Optional: it needs the ``browser`` extra and a Chromium binary (``browser_path``); without them
:func:`browser_available` says no and the chain leaves it out. The browser never touches the
network itself: every request it makes is answered through the guarded fetcher
(:meth:`~fathom.tools.fetch.Fetcher.hop`), so each one, and each redirect hop, passes the SSRF
guard and the allow-list; images, media and fonts are not fetched at all; a page is bounded in
time (``timeout_s``), in requests and in bytes, and is closed when its call is cancelled.
One browser is launched per process and event loop, on first need, and closed with the last reader.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from typing import Any

from fathom.tools.base import ToolError
from fathom.tools.extract import Document
from fathom.tools.fetch import USER_AGENT, Fetcher
from fathom.tools.html_text import html_to_text
from fathom.tools.readers.base import ReaderError

log = logging.getLogger(__name__)
MAX_REQUESTS = 150
MAX_PAGE_BYTES = 20_000_000
_SKIPPED = frozenset({"image", "media", "font", "websocket", "eventsource", "manifest"})


def browser_available(path: str) -> bool:
    """Whether Playwright is installed and ``path`` is an executable browser."""
    return importlib.util.find_spec("playwright") is not None and os.access(path, os.X_OK)


class _Shared:
    """The process's browser on one event loop: launched on first use, closed with its last user."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.playwright: Any = None
        self.browser: Any = None

    async def get(self, path: str) -> Any:
        async with self.lock:
            if self.browser is None or not self.browser.is_connected():
                from playwright.async_api import async_playwright

                self.playwright = self.playwright or await async_playwright().start()
                self.browser = await self.playwright.chromium.launch(
                    executable_path=path, headless=True,
                    # No proxy the browser could reach: should a request ever escape the route
                    # below, it fails instead of reaching the network unguarded.
                    args=["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"],
                )
            return self.browser

    async def close(self) -> None:
        async with self.lock:
            browser, playwright, self.browser, self.playwright = self.browser, self.playwright, None, None
        for closer in (browser, playwright):
            if closer is not None:
                try:
                    await (closer.close() if closer is browser else closer.stop())
                except Exception:  # already gone with its process
                    log.debug("closing the browser failed", exc_info=True)


_SHARED: dict[asyncio.AbstractEventLoop, _Shared] = {}


class BrowserReader:
    """Renders a page in headless Chromium and reads the text it ends up showing."""

    name = "browser"

    def __init__(self, fetcher: Fetcher, *, path: str = "/usr/bin/chromium", timeout_s: float = 30.0) -> None:
        self.fetcher, self.path, self.timeout_s = fetcher, path, timeout_s
        self._shared: _Shared | None = None

    def handles(self, host: str) -> bool:
        return True

    async def read(self, url: str) -> Document | None:
        if self._shared is None:
            self._shared = _SHARED.setdefault(asyncio.get_running_loop(), _Shared())
            self._shared.users += 1
        try:
            browser = await self._shared.get(self.path)
        except ImportError:
            raise ReaderError("the headless browser needs Playwright: pip install 'fathom-deepresearch[browser]'") from None
        except Exception as exc:
            raise ReaderError(f"the headless browser did not start ({type(exc).__name__})") from None
        context = await browser.new_context(service_workers="block", java_script_enabled=True,
                                            user_agent=USER_AGENT)
        budget = {"requests": 0, "bytes": 0}
        try:
            # On the context, not the page: a popup or a frame the page opens is answered here too.
            await context.route("**/*", lambda route: self._answer(route, budget))
            page = await context.new_page()
            ms = self.timeout_s * 1000
            try:
                await page.goto(url, wait_until="load", timeout=ms * 0.6)
                await page.wait_for_load_state("networkidle", timeout=ms * 0.25)
            except Exception as exc:  # a page still busy at the deadline is read as it stands
                if "Timeout" not in type(exc).__name__:
                    raise ReaderError(f"the browser could not open the page ({_first_line(exc)})") from None
            html = await page.content()
            final = page.url
        finally:
            await context.close()  # also on cancellation: no page outlives its call
        title, text = await asyncio.to_thread(html_to_text, html[:MAX_PAGE_BYTES])
        if not text.strip():
            return None  # nothing to add to what the static page said
        return Document(url=final or url, title=title, text=text)

    async def _answer(self, route: Any, budget: dict[str, int]) -> None:
        """Answer one browser request through the guarded fetcher (or refuse it)."""
        request = route.request
        budget["requests"] += 1
        if request.resource_type in _SKIPPED or budget["requests"] > MAX_REQUESTS or budget["bytes"] > MAX_PAGE_BYTES:
            await route.abort("blockedbyclient")
            return
        headers = {k: v for k, v in request.headers.items() if not k.startswith(":")}
        try:
            hop = await self.fetcher.hop(request.url, method=request.method, headers=headers,
                                         content=request.post_data_buffer,
                                         max_bytes=max(1, min(self.fetcher.max_bytes, MAX_PAGE_BYTES - budget["bytes"])))
        except ToolError as exc:
            log.debug("browser request %s refused: %s", request.url, exc)
            await route.abort("blockedbyclient" if "refused" in str(exc) else "failed")
            return
        budget["bytes"] += len(hop.body)
        await route.fulfill(status=hop.status, headers=dict(hop.headers), body=hop.body)

    async def aclose(self) -> None:
        """Give the shared browser back; the last reader of the process closes it."""
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.users -= 1
            if shared.users <= 0:
                await shared.close()
                for loop, value in list(_SHARED.items()):
                    if value is shared:
                        del _SHARED[loop]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]

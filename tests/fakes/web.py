"""A fake web on 127.0.0.1: realistic pages, redirects, slow, huge, binary and badly encoded responses.

Faults served by default: ``/slow`` (answers late), ``/huge``, ``/image.png`` and ``/download``
(binary), ``/loop/1`` (seven redirects), ``/error500``, ``/bad-charset`` (a charset no codec
knows, on bytes that are not UTF-8), ``/dropped`` (the connection is cut half way through the
body) and ``/endless`` (a body that never ends, 1 KB every 50 ms).

``FakeWeb`` counts requests per path (``fake.hits["/article"]``) so tests can assert that a page
was fetched once, or never. Pages are added with :meth:`FakeWeb.add_page` and redirects with
:meth:`FakeWeb.add_redirect`; unknown paths answer 404.

``FakeChatLLM`` is a minimal OpenAI-compatible ``/v1/chat/completions`` server with scripted
replies, for testing the query-LLM path through a real chat client.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import LoopbackServer, dropped_body

# A 1x1 transparent PNG.
PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

ARTICLE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Kestrel Bridge – History and Engineering | Rivertown Heritage</title>
  <style>body { font-family: serif; } .promo { color: red; }</style>
  <script>window.analytics = {track: function() { return "TRACKING-SCRIPT"; }};</script>
</head>
<body>
  <header class="site-header"><a href="/">Rivertown Heritage</a> <span>Site banner text</span></header>
  <nav><ul><li><a href="/">Home</a></li><li><a href="/bridges">All bridges</a></li><li><a href="/contact">Contact us</a></li></ul></nav>
  <div class="cookie-banner">We use cookies to improve your experience. Accept all cookies?</div>
  <main>
    <article>
      <h1>Kestrel Bridge</h1>
      <p>The <b>Kestrel Bridge</b> is a wrought-iron truss bridge that carries Mill Road over the
         River Awen in Rivertown.</p>
      <h2>History</h2>
      <p>Construction began in 1894 under the engineer Harriet Molyneux. The Kestrel Bridge was
         officially opened on 14 June 1897 by the mayor, Alderman Thomas Pryce, after three years of work.</p>
      <p>The bridge was closed to motor traffic in 1968 and restored between 2004 and 2006.</p>
      <h2>Design</h2>
      <p>The main span uses a Pratt truss with riveted joints.</p>
      <ul>
        <li>Main span: 62 metres</li>
        <li>Deck width: 7.5 metres
          <ul><li>Footway on the east side only</li></ul>
        </li>
        <li>Material: wrought iron from the Awen Valley works</li>
      </ul>
      <table>
        <caption>Key figures</caption>
        <tr><th>Feature</th><th>Value</th><th>Unit</th></tr>
        <tr><td>Total length</td><td>148</td><td>m</td></tr>
        <tr><td>Cost (1897)</td><td>21,400</td><td>GBP</td></tr>
      </table>
      <h3>Restoration</h3>
      <p>The 2004&ndash;2006 restoration replaced 1,200 rivets and repainted the truss in its original green.</p>
    </article>
    <aside class="sidebar"><h2>Related</h2><p>Sidebar: see also the Heron Viaduct.</p></aside>
    <form action="/search"><input name="q"><button>Search the site</button></form>
  </main>
  <footer><p>Footer: &copy; 2024 Rivertown Heritage Society. All rights reserved.</p></footer>
  <script>console.log("late script");</script>
</body>
</html>
"""

ENCYCLOPEDIA_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Lake Vostrand - Open Encyclopedia</title></head>
<body>
<div id="mw-navigation"><a href="/">Main page</a> <a href="/random">Random article</a></div>
<div id="content">
<h1 id="firstHeading">Lake Vostrand</h1>
<table class="infobox"><tr><th>Location</th><td>Norrland, Sweden</td></tr>
<tr><th>Surface area</th><td>412 km<sup>2</sup></td></tr><tr><th>Max. depth</th><td>221 m</td></tr></table>
<p><b>Lake Vostrand</b> is a glacial lake in northern Sweden. It is the country's third deepest lake.</p>
<div class="toc"><ul><li>1 Geography</li><li>2 Ecology</li><li>3 History</li></ul></div>
<h2><span class="mw-headline">Geography</span></h2>
<p>The lake is fed by the Vostra and Tjärn rivers and drains into the Gulf of Bothnia.</p>
<h2><span class="mw-headline">Ecology</span></h2>
<p>Arctic char and brown trout live in the lake. The population of arctic char was estimated at
   about 80,000 in a 2019 survey by the county board.</p>
<h2><span class="mw-headline">History</span></h2>
<p>The first scientific sounding of the lake was made in 1911 by the hydrographer Elin Strand,
   who measured the maximum depth of 221 metres.</p>
<ol><li>1911: first sounding</li><li>1952: hydroelectric dam built at the outlet</li></ol>
</div>
<div class="printfooter">Retrieved from the Open Encyclopedia</div>
<div id="catlinks">Categories: Lakes of Sweden</div>
</body></html>
"""

NEWS_HTML = """<!DOCTYPE html>
<html><head><title>City council approves tram extension</title>
<meta name="viewport" content="width=device-width"></head>
<body>
<div role="navigation"><a href="/news">News</a> | <a href="/sport">Sport</a></div>
<div class="newsletter">Sign up for our newsletter!</div>
<article>
<header><h1>City council approves tram extension</h1><p class="byline">By Ana Lopes, 3 March 2025</p></header>
<p>The council voted 31 to 12 on Tuesday to extend the Line 4 tram by 6.2 kilometres to the airport.</p>
<blockquote><p>"This is the biggest transport investment in a generation," said the transport chair.</p></blockquote>
<p>Construction is expected to start in 2026<br>and finish in 2029.</p>
<footer><p>Filed under Transport</p></footer>
</article>
<div class="share-buttons">Share on social media</div>
<footer class="site-footer">Contact the newsroom</footer>
</body></html>
"""

FINAL_HTML = """<html><head><title>Final destination</title></head>
<body><p>You reached the final page after the redirects.</p></body></html>"""

EMPTY_HTML = """<html><head><title>Nothing here</title><script>var x = 1;</script></head>
<body><nav>Menu</nav><div>   </div></body></html>"""

LATIN1_HTML = "<html><head><title>Caf\u00e9 menu</title></head><body><p>Cr\u00e8me br\u00fbl\u00e9e costs 7 \u00a3.</p></body></html>"
META_CHARSET_HTML = (
    '<html><head><meta charset="windows-1252"><title>Se\u00f1or</title></head>'
    "<body><p>Pi\u00f1ata \u2013 \u201cquoted\u201d \u20ac5</p></body></html>"
)


@dataclass
class FakePage:
    """One response the fake serves at a path."""

    body: bytes
    content_type: str | None = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the response starts; ends early if the client goes away
    drip_s: float = 0.0  # if set, the body is sent a byte at a time, this long apart
    drop_after: int | None = None  # if set, the connection is cut after this many body bytes
    endless: bool = False  # the body repeats forever (1 KB every 50 ms) until the client hangs up


class FakeWeb:
    """An HTTP server on 127.0.0.1 with the pages listed in the module docstring.

    ``slow_s`` is how long ``/slow`` waits before answering; ``huge_bytes`` is the size of ``/huge``.
    """

    def __init__(self, *, slow_s: float = 30.0, huge_bytes: int = 300_000) -> None:
        self.pages: dict[str, FakePage] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []  # {"path", "headers"}: what clients sent
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once (for concurrency caps)
        self._lock = threading.Lock()
        self._server = LoopbackServer(Starlette(routes=[Route("/{path:path}", self._serve)]))
        self._add_defaults(slow_s, huge_bytes)

    # ---- configuration ------------------------------------------------------------------------

    def add_page(
        self,
        path: str,
        body: str | bytes,
        content_type: str | None = "text/html; charset=utf-8",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        drip_s: float = 0.0,
        encoding: str = "utf-8",
        drop_after: int | None = None,
        endless: bool = False,
    ) -> str:
        """Serve ``body`` at ``path``; returns the page's full URL."""
        data = body.encode(encoding) if isinstance(body, str) else body
        self.pages[path] = FakePage(data, content_type, status, dict(headers or {}), delay_s, drip_s,
                                    drop_after, endless)
        return self.url(path)

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        """Redirect ``path`` to ``location`` (a path on this server or any absolute URL)."""
        return self.add_page(path, b"", None, status=status, headers={"Location": location})

    def _add_defaults(self, slow_s: float, huge_bytes: int) -> None:
        self.add_page("/article", ARTICLE_HTML)
        self.add_page("/wiki/Lake_Vostrand", ENCYCLOPEDIA_HTML)
        self.add_page("/news/tram", NEWS_HTML)
        self.add_page("/final", FINAL_HTML)
        self.add_redirect("/r1", "/r2", 301)
        self.add_redirect("/r2", "/final", 302)
        for i in range(1, 8):  # /loop/1 -> ... -> /loop/7 -> /final: seven hops
            self.add_redirect(f"/loop/{i}", f"/loop/{i + 1}" if i < 7 else "/final")
        self.add_page("/slow", "<html><body><p>Too late.</p></body></html>", delay_s=slow_s)
        self.add_page("/drip", "<html><body><p>" + "x" * 200 + "</p></body></html>", drip_s=0.5)
        paragraph = "<p>" + "Filler sentence about nothing in particular. " * 20 + "</p>\n"
        self.add_page("/huge", "<html><head><title>Huge</title></head><body>"
                      + paragraph * (huge_bytes // len(paragraph) + 1) + "</body></html>")
        self.add_page("/image.png", PNG_BYTES, "image/png")
        self.add_page("/download", b"\x00\x01\x02binary\x00", "application/octet-stream")
        self.add_page("/paper.pdf", b"%PDF-1.4\n%fake\n", "application/pdf")
        self.add_page("/notes.txt", "Plain notes.\n\nThe answer is 42.\n", "text/plain; charset=utf-8")
        self.add_page("/readme.md", "# Readme\n\nSome *markdown* text.\n", "text/markdown")
        self.add_page("/data.json", json.dumps({"name": "Kestrel Bridge", "opened": 1897, "span_m": 62}),
                      "application/json")
        self.add_page("/latin1", LATIN1_HTML, "text/html; charset=iso-8859-1", encoding="latin-1")
        self.add_page("/meta-charset", META_CHARSET_HTML, "text/html", encoding="cp1252")
        self.add_page("/empty", EMPTY_HTML)
        self.add_page("/no-type", "<!doctype html><html><body><p>Untyped page.</p></body></html>", None)
        self.add_page("/error500", "<html><body><h1>Internal Server Error</h1></body></html>", status=500)
        self.add_page("/bad-charset", "<html><body><p>Caf\u00e9 \u00e0 la cr\u00e8me.</p></body></html>",
                      "text/html; charset=x-no-such-charset", encoding="latin-1")
        self.add_page("/dropped", "<html><body><p>" + "Half a page. " * 400 + "</p></body></html>", drop_after=2048)
        self.add_page("/endless", "<p>" + "More and more. " * 68 + "</p>\n", endless=True)

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._server.url

    @property
    def hostport(self) -> str:
        """``127.0.0.1:<port>``: what to put in ``allow_hosts``."""
        return self._server.hostport

    def url(self, path: str) -> str:
        return self._server.url + path

    def reset(self) -> None:
        """Forget counted hits and recorded requests."""
        with self._lock:
            self.hits.clear()
            self.requests.clear()
            self.max_in_flight = 0

    def start(self) -> FakeWeb:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeWeb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- serving ------------------------------------------------------------------------------

    async def _serve(self, request: Request) -> Response:
        path = request.url.path
        with self._lock:
            self.hits[path] += 1
            self.requests.append({"path": path, "headers": dict(request.headers)})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            page = self.pages.get(path)
            if page is None:
                return Response("<html><body><h1>Not Found</h1></body></html>", 404, media_type="text/html")
            if page.delay_s:
                await _wait_or_disconnect(request, page.delay_s)
            headers = dict(page.headers)
            if page.content_type:
                headers["content-type"] = page.content_type
            if page.drip_s:
                return StreamingResponse(_drip(page.body, page.drip_s), page.status, headers=headers)
            if page.endless:
                return StreamingResponse(_endless(page.body), page.status, headers=headers)
            if page.drop_after is not None:
                return StreamingResponse(dropped_body(page.body, page.drop_after), page.status, headers=headers)
            # Without media_type Starlette adds no Content-Type, so content_type=None sends none.
            return Response(page.body, page.status, headers=headers)
        finally:
            with self._lock:
                self.in_flight -= 1


async def _wait_or_disconnect(request: Request, seconds: float) -> None:
    """Sleep, but stop as soon as the client hangs up, so server shutdown never waits on us."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)


async def _drip(body: bytes, every_s: float):  # type: ignore[no-untyped-def]
    for i in range(len(body)):
        yield body[i : i + 1]
        await asyncio.sleep(every_s)


async def _endless(chunk: bytes):  # type: ignore[no-untyped-def]
    while True:  # Starlette stops iterating when the client disconnects (or the server stops)
        yield chunk
        await asyncio.sleep(0.05)


class FakeChatLLM:
    """``POST /v1/chat/completions`` answering with scripted replies (the last one repeats).

    A reply may be a string (the message content) or an int (an HTTP error status).
    ``requests`` records the JSON bodies received.
    """

    def __init__(self, replies: list[str | int] | None = None, *, model: str = "fake-extractor") -> None:
        self.replies: list[str | int] = list(replies or ["Rationale:\nok\n\nEvidence:\n- ok\n\nSummary:\nok"])
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._server = LoopbackServer(Starlette(routes=[
            Route("/v1/chat/completions", self._complete, methods=["POST"]),
            Route("/v1/models", self._models),
        ]))

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        return self._server.url + "/v1"

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "fake"}]})

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        reply = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        if isinstance(reply, int):
            return JSONResponse({"error": {"message": "injected failure", "type": "server_error"}}, reply)
        return JSONResponse({
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        })

    def start(self) -> FakeChatLLM:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeChatLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

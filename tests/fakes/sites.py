"""Fake GitHub, Reddit, YouTube, arXiv, Wikipedia, Internet Archive and Jina on 127.0.0.1.

One loopback server answers each site's real response format under its own path prefix; a test
points the readers' base URLs at :meth:`FakeSites.base` (``/github-api``, ``/github-raw``,
``/reddit``, ``/youtube``, ``/arxiv``, ``/wikipedia``, ``/archive``, ``/jina``). ``/live/...``
holds pages read directly: one that refuses us (HTTP 403), one whose text only JavaScript writes.

``hijack`` set to a URL makes every answer under ``hijack_prefix`` a redirect there (the SSRF tests
point it at an internal service on another port); ``/live/to-internal`` always redirects to
``internal``. ``requests`` records ``(path, headers)`` of every request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.pdf import make_pdf
from tests.fakes.server import LoopbackServer

README = """# Widgets

Widgets is a toolkit for **sprocket alignment**.

## Installation

Run `pip install widgets`. Version 4.2 added the torque calibrator.
"""
RAW_FILE = "def calibrate(torque):\n    # the calibrator clamps torque at 88 newton-metres\n    return min(torque, 88)\n"
ISSUE = {
    "number": 17, "title": "Calibrator overshoots on cold start", "state": "open",
    "user": {"login": "mira"}, "created_at": "2025-02-01T10:00:00Z",
    "body": "After a cold start the calibrator reports 91 Nm, above the 88 Nm clamp.",
}
COMMENTS = [
    {"user": {"login": "devon"}, "created_at": "2025-02-02T09:00:00Z", "body": "Reproduced at -5 C: the clamp runs before warm-up."},
    {"user": {"login": "mira"}, "created_at": "2025-02-03T09:00:00Z", "body": "Fixed in 4.2.1 by clamping after warm-up."},
]
REDDIT_POST = {"title": "Best way to season a carbon steel pan?", "author": "panfan", "score": 412,
               "subreddit": "cooking", "selftext": "I bought a carbon steel pan. How many layers of oil?", "is_self": True,
               "permalink": "/r/cooking/comments/abc123/best_way/"}
REDDIT_COMMENTS = [
    {"author": "chef_kay", "score": 50, "body": "Three thin layers of flaxseed oil, 30 minutes at 230 C each."},
    {"author": "lurker", "score": 900, "body": "Just cook bacon in it a few times; that is how the seasoning builds."},
]
WIKI_EXTRACT = ("Lake Vostrand is a glacial lake in northern Sweden.\n\n== Geography ==\n"
                "The lake drains into the Gulf of Bothnia.\n\n== History ==\n"
                "The first sounding, in 1911 by Elin Strand, measured a depth of 221 metres.")
ARXIV_ID = "2401.01234"
ARXIV_ABS = f"""<!DOCTYPE html><html><head><title>[{ARXIV_ID}] Sparse Kestrels</title>
<meta name="citation_title" content="Sparse Kestrels: Attention for Birds" />
<meta name="citation_author" content="Molyneux, Harriet" />
<meta name="citation_author" content="O'Brien, Tomas" />
<meta name="citation_date" content="2024/01/05" />
<meta name="citation_abstract" content="We show that sparse attention predicts kestrel flight." />
</head><body><h1>Sparse Kestrels</h1><blockquote>Abstract: We show that sparse attention predicts kestrel flight.</blockquote></body></html>"""
ARXIV_PDF = make_pdf([["Sparse Kestrels: Attention for Birds", "1 Introduction",
                       "Our model reaches 93.4 percent accuracy on the hover benchmark."]])
TRANSCRIPT = ('<?xml version="1.0" encoding="utf-8" ?><transcript>'
              '<text start="0.0" dur="2.5">Welcome back to the workshop.</text>'
              '<text start="2.5" dur="3.0">Today we sharpen a chisel to 25 degrees &amp;amp; hone it.</text>'
              '</transcript>')
SNAPSHOT_HTML = ("<html><head><title>Members only</title></head><body><article><h1>Members only</h1>"
                 "<p>The annual meeting of the Kestrel Society is held on the second Tuesday of May, "
                 "in the old engine house by the river.</p></article></body></html>")
JS_PAGE = """<!DOCTYPE html><html><head><title>Dashboard</title></head>
<body><div id="app">Loading…</div>
<script>
fetch("/live/js-data.json").then(r => r.json()).then(d => {
  document.getElementById("app").innerHTML = "<article><h1>" + d.title + "</h1><p>" + d.text + "</p></article>";
});
</script></body></html>"""
JS_DATA = {"title": "Quarterly figures",
           "text": "Revenue rose to 4.7 million euros in the third quarter, written by JavaScript after the page loaded. "
                   * 4}


class FakeSites:
    """The fake sites on one loopback port (see the module docstring)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.hijack: str | None = None
        self.hijack_prefix = "/"
        self.busy_hits = 0
        self.internal: str | None = None
        self.js_probe: str | None = None  # an extra URL the JavaScript page fetches (the SSRF test)
        self._lock = threading.Lock()
        self._server = LoopbackServer(Starlette(routes=[Route("/{path:path}", self._serve, methods=["GET", "POST"])]))

    # ---- addresses ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def hostport(self) -> str:
        return self._server.hostport

    def base(self, site: str) -> str:
        return f"{self.url}/{site}"

    def paths(self) -> list[str]:
        with self._lock:
            return [p for p, _ in self.requests]

    def headers_of(self, prefix: str) -> list[dict[str, str]]:
        with self._lock:
            return [h for p, h in self.requests if p.startswith(prefix)]

    # ---- the server ---------------------------------------------------------------------------

    async def _serve(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        with self._lock:
            self.requests.append((path + (f"?{request.url.query}" if request.url.query else ""), dict(request.headers)))
        if path.startswith("/live/hang"):  # an answer that does not come (until the test is long over)
            await asyncio.sleep(5)
            return PlainTextResponse("late")
        if self.hijack and path.startswith(self.hijack_prefix):
            return RedirectResponse(self.hijack, status_code=302)
        site, _, rest = path[1:].partition("/")
        handler = getattr(self, "_" + site.replace("-", "_"), None)
        answer = handler(request, "/" + rest) if handler else None
        return answer if answer is not None else PlainTextResponse("Not Found", status_code=404)

    def _github_api(self, request: Request, path: str) -> Response | None:
        if path == "/repos/acme/widgets":
            return JSONResponse({"full_name": "acme/widgets", "description": "Sprocket alignment toolkit"})
        if path == "/repos/acme/widgets/readme":
            encoded = base64.encodebytes(README.encode()).decode()  # GitHub wraps base64 at 60 columns
            return JSONResponse({"name": "README.md", "path": "README.md", "encoding": "base64", "content": encoded})
        if path == "/repos/acme/widgets/issues/17":
            return JSONResponse(ISSUE)
        if path == "/repos/acme/widgets/issues/17/comments":
            return JSONResponse(COMMENTS)
        return JSONResponse({"message": "Not Found", "status": "404"}, status_code=404) if path.startswith("/repos/") else None

    def _github_raw(self, request: Request, path: str) -> Response | None:
        if path == "/acme/widgets/main/src/calibrate.py":
            return PlainTextResponse(RAW_FILE)
        return None

    def _reddit(self, request: Request, path: str) -> Response | None:
        if path == "/r/cooking/comments/abc123/best_way.json":
            post = {"kind": "Listing", "data": {"children": [{"kind": "t3", "data": REDDIT_POST}]}}
            comments = {"kind": "Listing", "data": {"children": [
                *({"kind": "t1", "data": c} for c in REDDIT_COMMENTS),
                {"kind": "more", "data": {"count": 12, "children": ["x1", "x2"]}},
            ]}}
            return JSONResponse([post, comments])
        if path == "/r/cooking.json":
            return JSONResponse({"kind": "Listing", "data": {"children": [{"kind": "t3", "data": REDDIT_POST}]}})
        return None

    def _youtube(self, request: Request, path: str) -> Response | None:
        video = request.query_params.get("v", "")
        if path == "/watch" and video in ("dQw4w9WgXcQ", "noCaptions1"):
            player: dict[str, Any] = {"videoDetails": {
                "videoId": video, "title": "Sharpening a chisel", "author": "Workshop Weekly",
                "shortDescription": "How we sharpen chisels: the angle, the stones, the strop."}}
            if video == "dQw4w9WgXcQ":
                player["captions"] = {"playerCaptionsTracklistRenderer": {"captionTracks": [
                    {"baseUrl": f"{self.base('youtube')}/api/timedtext?v={video}&lang=de", "languageCode": "de"},
                    {"baseUrl": f"{self.base('youtube')}/api/timedtext?v={video}&lang=en&kind=asr",
                     "languageCode": "en", "kind": "asr"},
                ]}}
            page = f"<html><body><script>var ytInitialPlayerResponse = {json.dumps(player)};var meta = {{}};</script></body></html>"
            return HTMLResponse(page)
        if path == "/api/timedtext" and request.query_params.get("lang") == "en":
            return Response(TRANSCRIPT, media_type="text/xml")
        if path == "/api/timedtext":
            return Response('<?xml version="1.0" ?><transcript><text start="0">Willkommen</text></transcript>',
                            media_type="text/xml")
        return None

    def _arxiv(self, request: Request, path: str) -> Response | None:
        if path == f"/abs/{ARXIV_ID}":
            return HTMLResponse(ARXIV_ABS)
        if path == f"/pdf/{ARXIV_ID}":
            return Response(ARXIV_PDF, media_type="application/pdf")
        return None

    def _wikipedia(self, request: Request, path: str) -> Response | None:
        if path == "/w/api.php" and request.query_params.get("prop") == "extracts":
            title = request.query_params.get("titles", "")
            if title == "Lake Vostrand":
                page = {"pageid": 1, "ns": 0, "title": title, "extract": WIKI_EXTRACT}
            else:
                page = {"ns": 0, "title": title, "missing": True}
            return JSONResponse({"batchcomplete": True, "query": {"pages": [page]}})
        return None

    def _archive(self, request: Request, path: str) -> Response | None:
        if path == "/wayback/available":
            url = request.query_params.get("url", "")
            if url.endswith("/live/blocked"):
                snapshot = {"status": "200", "available": True, "timestamp": "20240115093000",
                            "url": f"{self.base('archive')}/web/20240115093000/{url}"}
                return JSONResponse({"url": url, "archived_snapshots": {"closest": snapshot}})
            return JSONResponse({"url": url, "archived_snapshots": {}})
        if path.startswith("/web/20240115093000id_/"):
            return HTMLResponse(SNAPSHOT_HTML)
        if path.startswith("/web/20240115093000/"):  # the toolbar page: must not be what we read
            return HTMLResponse("<html><body><div id='wm-toolbar'>Wayback Machine toolbar</div>" + SNAPSHOT_HTML + "</body></html>")
        return None

    def _jina(self, request: Request, path: str) -> Response | None:
        target = path[1:]
        body = (f"Title: Rendered by the reader\nURL Source: {target}\n\nMarkdown Content:\n"
                + "The reader service rendered this page: the ferry leaves at 07:40 from pier 3. " * 4)
        return PlainTextResponse(body)

    def _live(self, request: Request, path: str) -> Response | None:
        if path == "/blocked":
            return PlainTextResponse("Access denied", status_code=403)
        if path == "/private":
            return PlainTextResponse("Log in first", status_code=401)
        if path == "/busy":  # throttled once, with a short Retry-After, then served
            self.busy_hits += 1
            if self.busy_hits == 1:
                return PlainTextResponse("Slow down", status_code=429, headers={"Retry-After": "0"})
            return HTMLResponse(SNAPSHOT_HTML)
        if path == "/throttled":  # asks for a wait longer than a tool call may take
            return PlainTextResponse("Slow down", status_code=429, headers={"Retry-After": "3600"})
        if path == "/to-internal" and self.internal:
            return RedirectResponse(self.internal, status_code=302)
        if path == "/js":
            page = JS_PAGE
            if self.js_probe:  # a request the page's script makes besides its data
                page = page.replace("</body>", f'<script>fetch("{self.js_probe}")</script></body>')
            return HTMLResponse(page)
        if path == "/blank":  # a single-page app whose script never came
            return HTMLResponse('<html><body><div id="root"></div><script src="/live/app.js"></script></body></html>')
        if path == "/js-data.json":
            return JSONResponse(JS_DATA)
        return None

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeSites:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeSites:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Fake search APIs on 127.0.0.1 speaking each real protocol: SearXNG, Serper and Tavily.

Each fake serves configurable results (``set_results([{"title", "url", "snippet"}, ...])``),
records every request (``requests``: method, path, headers, query params, JSON body, and on
SearXNG the ``status`` of an injected failure; ``max_in_flight``:
the most served at once) and fails on
demand: ``fail_next(kind, times=1, retry_after=None, after=0)`` with kind one of ``"unauthorized"`` (401),
``"forbidden"`` (403), ``"rate_limit"`` (429, optional ``Retry-After``), ``"server_error"``
(500), ``"slow"`` (answers after ``slow_s``) or ``"malformed"`` (200 with a broken JSON body).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import LoopbackServer

Hit = dict[str, str]

DEFAULT_RESULTS: list[Hit] = [
    {"title": "Kestrel Bridge - Wikipedia", "url": "https://en.wikipedia.org/wiki/Kestrel_Bridge",
     "snippet": "The Kestrel Bridge is a wrought-iron truss bridge opened in 1897."},
    {"title": "Kestrel Bridge history", "url": "https://rivertown.example/heritage/kestrel",
     "snippet": "Construction began in 1894 under Harriet Molyneux."},
    {"title": "Bridges of the River Awen", "url": "https://bridges.example/awen",
     "snippet": "A survey of the seven bridges over the Awen."},
]
FAILURE_KINDS = ("unauthorized", "forbidden", "rate_limit", "server_error", "slow", "malformed")


@dataclass
class _Failure:
    kind: str
    retry_after: str | None = None


class _FakeSearchApi:
    """What the three fakes share: results, failure queue, request log, loopback server."""

    def __init__(self, results: list[Hit] | None = None, *, api_key: str | None = "test-key",
                 slow_s: float = 30.0) -> None:
        self.results: list[Hit] = list(DEFAULT_RESULTS if results is None else results)
        self.api_key = api_key
        self.slow_s = slow_s
        self.requests: list[dict[str, Any]] = []
        self._failures: list[_Failure | None] = []  # None: answer that request normally
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once (for concurrency caps)
        self._server = LoopbackServer(self._counting(Starlette(routes=self._routes())))

    # ---- configuration ------------------------------------------------------------------------

    def set_results(self, results: list[Hit]) -> None:
        self.results = list(results)

    def fail_next(self, kind: str, times: int = 1, *, retry_after: float | str | None = None,
                  after: int = 0) -> None:
        """Make ``times`` requests fail as ``kind`` (see the module docstring), once ``after``
        requests have been answered normally."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; use one of {FAILURE_KINDS}")
        with self._lock:
            self._failures.extend([None] * after)
            self._failures.extend(
                _Failure(kind, None if retry_after is None else str(retry_after)) for _ in range(times)
            )

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self.requests.clear()

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> _FakeSearchApi:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- protocol plumbing --------------------------------------------------------------------

    def _counting(self, app: Any) -> Any:
        """``app`` wrapped so that ``in_flight`` and ``max_in_flight`` count requests being served."""

        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await app(scope, receive, send)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return asgi

    def _routes(self) -> list[Route]:
        raise NotImplementedError

    async def _record(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = await request.json() if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        entry = {"method": request.method, "path": request.url.path, "headers": dict(request.headers),
                 "params": dict(request.query_params), "json": body}
        with self._lock:
            self.requests.append(entry)
        return entry

    async def _injected(self, request: Request) -> Response | None:
        """The response for an injected failure, if one is queued."""
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is None:
            return None
        if failure.kind == "slow":
            loop = asyncio.get_running_loop()
            end = loop.time() + self.slow_s
            while loop.time() < end and not await request.is_disconnected():
                await asyncio.sleep(0.05)
            return None  # if anyone is still waiting, answer normally
        if failure.kind == "malformed":
            return Response(b'{"results": [ {"title": "broken', 200, media_type="application/json")
        status = {"unauthorized": 401, "forbidden": 403, "rate_limit": 429, "server_error": 500}[failure.kind]
        headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
        return self._error(status, headers)

    def _error(self, status: int, headers: dict[str, str]) -> Response:
        return JSONResponse({"message": f"injected HTTP {status}"}, status, headers=headers)


class FakeSearxng(_FakeSearchApi):
    """SearXNG: ``GET /search?q=…&format=json[&pageno=N]``; 10 results a page; 403 unless format=json."""

    PAGE_SIZE = 10

    def _routes(self) -> list[Route]:
        return [Route("/search", self._search, methods=["GET", "POST"])]

    async def _search(self, request: Request) -> Response:
        entry = await self._record(request)
        if (injected := await self._injected(request)) is not None:
            entry["status"] = injected.status_code  # a failed attempt: its retry is no repeated search
            return injected
        params = request.query_params
        if params.get("format") != "json":
            return Response("Forbidden", 403, media_type="text/plain")  # as SearXNG does without json
        page = int(params.get("pageno", "1"))
        chunk = self.results[(page - 1) * self.PAGE_SIZE : page * self.PAGE_SIZE]
        return JSONResponse({
            "query": params.get("q", ""), "number_of_results": len(self.results),
            "results": [{"url": r["url"], "title": r["title"], "content": r["snippet"], "engine": "fake",
                         "engines": ["fake"], "score": 1.0, "category": "general"} for r in chunk],
            "answers": [], "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": [],
        })


class FakeSerper(_FakeSearchApi):
    """Serper: ``POST /search`` with ``X-API-KEY``; honours ``num``; a wrong key gets 403 as Serper sends."""

    def _routes(self) -> list[Route]:
        return [Route("/search", self._search, methods=["POST"])]

    async def _search(self, request: Request) -> Response:
        entry = await self._record(request)
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return JSONResponse({"message": "Unauthorized.", "statusCode": 403}, 403)
        if (injected := await self._injected(request)) is not None:
            return injected
        body = entry["json"] if isinstance(entry["json"], dict) else {}
        num = int(body.get("num", 10))
        organic = [{"title": r["title"], "link": r["url"], "snippet": r["snippet"], "position": i}
                   for i, r in enumerate(self.results[:num], start=1)]
        return JSONResponse({
            "searchParameters": {"q": body.get("q", ""), "gl": body.get("gl"), "hl": body.get("hl"),
                                 "num": num, "type": "search", "engine": "google"},
            "organic": organic, "peopleAlsoAsk": [], "relatedSearches": [], "credits": 1,
        })

    def _error(self, status: int, headers: dict[str, str]) -> Response:
        return JSONResponse({"message": f"injected HTTP {status}", "statusCode": status}, status, headers=headers)


class FakeTavily(_FakeSearchApi):
    """Tavily: ``POST /search`` with ``Authorization: Bearer <key>``; error bodies ``{"detail": {"error": …}}``."""

    def _routes(self) -> list[Route]:
        return [Route("/search", self._search, methods=["POST"])]

    async def _search(self, request: Request) -> Response:
        entry = await self._record(request)
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, {})
        if (injected := await self._injected(request)) is not None:
            return injected
        body = entry["json"] if isinstance(entry["json"], dict) else {}
        n = int(body.get("max_results", 5))
        return JSONResponse({
            "query": body.get("query", ""), "follow_up_questions": None, "answer": None, "images": [],
            "results": [{"title": r["title"], "url": r["url"], "content": r["snippet"], "score": 0.9 - i / 100,
                         "raw_content": None} for i, r in enumerate(self.results[:n])],
            "response_time": 0.42, "request_id": f"req-{len(self.requests)}",
        })

    def _error(self, status: int, headers: dict[str, str]) -> Response:
        messages = {401: "Unauthorized: missing or invalid API key.",
                    429: "Your request has been blocked due to excessive requests.",
                    432: "This request exceeds your plan's set usage limit."}
        return JSONResponse({"detail": {"error": messages.get(status, f"injected HTTP {status}")}}, status,
                            headers=headers)

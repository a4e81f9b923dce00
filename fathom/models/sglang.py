"""Async client for SGLang's native ``POST /generate`` with a raw (ChatML) text prompt.

This is how the search and synthesizer models are driven, as upstream does: the protocol layer
renders the whole transcript, this client sends it with SGLang's own sampling names and returns
the text with the server's token counts (``cached_tokens`` shows the radix-cache reuse).

Failures become one-line errors from :mod:`fathom.models.base`: connection problems, timeouts,
408, 429 and 5xx are retried with the shared policy (:mod:`fathom.retry`: exponential backoff
with jitter), then raise :class:`ModelUnavailableError`; a context overflow (400 or 413 saying
so, or an abort saying so) raises :class:`ContextLengthError`; any other 4xx (never retried) and
an ``abort`` finish raise :class:`ModelError`.

A server that accepts a request and then says nothing is caught well before the total budget
(``timeout_s``) by :class:`~fathom.models.watch.SilenceWatch`, with ``GET /health`` as its
probe: silent for ``answer_timeout_s`` (60 s), it is given up at once with
:class:`ModelNotAnsweringError` (the run stops ``interrupted`` and resumes later), while
``model_wait`` progress events tell the people watching that the client is still waiting.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from fathom.aio import AsyncClosing
from fathom.errors import one_line
from fathom.models.base import (
    ContextLengthError,
    FinishReason,
    Generation,
    ModelError,
    ModelNotAnsweringError,
    ModelUnavailableError,
)
from fathom.models.retry import (
    RETRY_STATUSES,
    TransientModelError,
    call_model,
    connect_reason,
    error_message,
    is_context_error,
    is_context_overflow,
    retry_policy,
)
from fathom.models.watch import ANSWER_TIMEOUT_S, SilenceWatch
from fathom.tls import ssl_context

log = logging.getLogger(__name__)

# What to do when a server cannot be reached, by the client's name (the services name them).
UNREACHABLE_HINTS = {
    "search model": "start it with 'fathom serve start search', point --search-model-url at a running "
    "server, or run without a server with --local",
    "synthesizer model": "start it with 'fathom serve start synth' or point --synth-model-url at a running server",
}

CONNECT_TIMEOUT_S = 5.0  # a local server that does not accept within 5 s is not coming
# An eval keeps dozens of requests in flight: keep that many connections open between turns
# (httpx keeps 20 idle by default: the rest would connect afresh every turn).
POOL_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=256, keepalive_expiry=30.0)
HEALTH_TIMEOUT_S = 5.0


class SGLangClient(AsyncClosing):
    """Talk to one SGLang server over its native API. Use ``async with`` or call :meth:`aclose`.

    ``name`` only labels error messages ("search model server at … is unreachable"); the API key
    is sent as ``Authorization: Bearer`` and never logged. ``backoff_s`` is the first retry delay
    (doubling each retry, jittered); tests pass a tiny value.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 600,
        max_retries: int = 3,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "SGLang",
        backoff_s: float = 0.5,
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout_s = float(timeout_s)
        self.answer_timeout_s = float(answer_timeout_s)
        self._watch = SilenceWatch(name=name, url=self.base_url, where=f"{name} server at {self.base_url}",
                                   answer_timeout_s=self.answer_timeout_s, probe=self._alive,
                                   probe_what="GET /health")
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.timeout_s)),
            transport=transport,
            limits=POOL_LIMITS,
            trust_env=False,  # a proxy from the environment must not capture a local model server
            verify=ssl_context(),  # one per process: building one costs 0.1 s (see fathom.tls)
        )
        self._context_length: int | None = None

    def __repr__(self) -> str:  # no headers: they may hold the key
        return f"SGLangClient({self.base_url!r}, name={self.name!r})"

    # ---- public API ------------------------------------------------------------------------

    async def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = 0.6,
        repetition_penalty: float = 1.05,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Generation:
        """Complete ``prompt`` (raw text, no chat template applied) and return text and usage.

        Only SGLang sampling names are sent: real SGLang answers 400 to unknown keys such as
        ``max_tokens``. Raises :class:`ContextLengthError`, :class:`ModelUnavailableError` or
        :class:`ModelError` (one-line messages).
        """
        sampling: dict[str, Any] = {
            "max_new_tokens": int(max_new_tokens),
            "temperature": temperature,
            "repetition_penalty": repetition_penalty,
        }
        if stop:
            sampling["stop"] = list(stop)
        if top_p is not None:
            sampling["top_p"] = top_p
        body = await self._request_json("POST", "/generate", json={"text": prompt, "sampling_params": sampling})
        if isinstance(body, list):  # a batch answer; we sent one prompt, so take the first
            body = body[0] if body else {}
        return self._parse_generation(body)

    async def context_length(self) -> int | None:
        """The server's context window in tokens, or ``None`` when it does not say (cached).

        Asks ``/server_info`` (then the deprecated ``/get_server_info``), then ``/v1/models``
        (``max_model_len``), then ``/model_info``. Raises :class:`ModelUnavailableError` when
        the server cannot be reached.
        """
        if self._context_length is not None:
            return self._context_length
        for path, pick in (
            ("/server_info", _top_level_context),
            ("/get_server_info", _top_level_context),
            ("/v1/models", _models_context),
            ("/model_info", _top_level_context),
        ):
            try:
                body = await self._request_json("GET", path)
            except ModelError as exc:
                if getattr(exc, "http_status", None) in (404, 405):
                    continue  # route missing on an older or newer server: try the next one
                raise
            value = pick(body)
            if value:
                self._context_length = value
                return value
        return None

    async def health(self) -> bool:
        """True when ``GET /health`` answers 200 now. One quick try, never raises."""
        try:
            resp = await self._http.get("/health", timeout=min(HEALTH_TIMEOUT_S, self.timeout_s))
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def aclose(self) -> None:
        """Close the connection pool (and stop a /health probe still in flight)."""
        await self._watch.aclose()
        await self._http.aclose()

    # ---- transport ---------------------------------------------------------------------------

    async def _request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send with bounded retries; return the decoded JSON of a 2xx answer."""
        try:
            return await call_model(
                lambda: self._attempt(method, path, **kwargs),
                retry_policy(self.max_retries, self.backoff_s),
                where=f"{self.name} server at {self.base_url}",
                logger=log,
            )
        except ModelUnavailableError as exc:
            if isinstance(exc, ModelNotAnsweringError) or (hint := UNREACHABLE_HINTS.get(self.name)) is None:
                raise
            raise ModelUnavailableError(f"{exc}; {hint}") from None

    async def _attempt(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = await self._send(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TransientModelError(self._transport_reason(exc)) from exc
        if resp.status_code >= 400:
            message = _body_message(resp)
            if resp.status_code in RETRY_STATUSES:
                raise TransientModelError(f"HTTP {resp.status_code}: {message}")
            raise self._client_error(path, resp.status_code, message)
        try:
            return resp.json()
        except ValueError:
            raise ModelError(
                f"{self.name} server at {self.base_url} sent a non-JSON answer to {path}: "
                f"{one_line(resp.text, 120)}"
            ) from None

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, watched: progress events while it waits, given up when the server is silent."""
        return await self._watch.wait(self._http.request(method, path, **kwargs), what=f"{method} {path}")

    async def _alive(self, timeout_s: float) -> bool:
        """Ask ``GET /health``; any answer short of 5xx counts as a sign of life."""
        resp = await self._http.get("/health", timeout=timeout_s)
        return resp.status_code < 500

    def _client_error(self, path: str, status: int, message: str) -> ModelError:
        where = f"{self.name} server at {self.base_url}"
        err: ModelError
        if is_context_overflow(status, message):
            err = ContextLengthError(f"prompt does not fit the context of the {where}: {message}")
        elif status in (401, 403):
            err = ModelError(f"{where} refused the request (HTTP {status}): check the model API key")
        else:
            err = ModelError(f"{where} rejected {path} (HTTP {status}): {message}")
        err.http_status = status  # type: ignore[attr-defined]  # lets callers tell 404 from 400
        return err

    def _transport_reason(self, exc: httpx.TransportError) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection within {min(CONNECT_TIMEOUT_S, self.timeout_s):g} s"
        if isinstance(exc, httpx.TimeoutException):
            return f"no answer within {self.timeout_s:g} s"
        if isinstance(exc, httpx.ConnectError):
            return connect_reason(exc)
        return f"connection dropped ({type(exc).__name__}: {one_line(exc, 160) or 'no detail'})"

    # ---- parsing -----------------------------------------------------------------------------

    def _parse_generation(self, body: Any) -> Generation:
        if not isinstance(body, dict) or not isinstance(body.get("meta_info"), dict):
            raise ModelError(
                f"{self.name} server at {self.base_url} sent a /generate answer without meta_info: "
                f"{one_line(body, 160)}"
            )
        meta = body["meta_info"]
        text = body.get("text", "")
        if isinstance(text, list):  # some servers wrap a single completion in a list
            text = text[0] if text else ""
        finish, matched = _finish(meta.get("finish_reason"))
        if finish == "abort":
            detail = meta["finish_reason"].get("message") or "request aborted by the server"
            err_cls = ContextLengthError if is_context_error(str(detail)) else ModelError
            raise err_cls(f"{self.name} server at {self.base_url} aborted the generation: {one_line(detail)}")
        return Generation(
            text=str(text),
            finish_reason=finish,
            prompt_tokens=int(meta.get("prompt_tokens") or 0),
            completion_tokens=int(meta.get("completion_tokens") or 0),
            cached_tokens=int(meta.get("cached_tokens") or 0),
            matched_stop=matched,
        )


def _finish(raw: Any) -> tuple[FinishReason, str | int | None]:
    """Map SGLang's ``finish_reason`` dict to ("stop" | "length" | "abort", matched)."""
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind == "length":
            return "length", None
        if kind == "abort":
            return "abort", None
        return "stop", raw.get("matched")
    if raw == "length":  # tolerate a plain string from proxies
        return "length", None
    if raw == "abort":
        return "abort", None
    return "stop", None


def _body_message(resp: httpx.Response) -> str:
    try:
        return error_message(resp.json())
    except ValueError:
        return error_message(resp.text)


def _top_level_context(body: Any) -> int | None:
    value = body.get("context_length") if isinstance(body, dict) else None
    return value if isinstance(value, int) and value > 0 else None


def _models_context(body: Any) -> int | None:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        value = data[0].get("max_model_len")
        return value if isinstance(value, int) and value > 0 else None
    return None

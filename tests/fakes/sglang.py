"""A fake SGLang server on 127.0.0.1 that speaks SGLang's real HTTP protocol, driven by a script.

Use it wherever a test needs the search/synthesizer model or an OpenAI-compatible query LLM::

    with FakeSGLang(["The answer is 42.", Reply(status=503)]) as fake:
        client = SGLangClient(fake.url)

Script: each model request (``POST /generate`` per prompt, ``/v1/chat/completions``,
``/v1/completions``) consumes one item. An item is a ``str`` (the completion; finish "stop" on
EOS id 151645), a :class:`Reply` (status, finish, delay, prompt regex ``when``), or a callable
``(prompt) -> str | Reply``. Choice of item for a request: the first ``Reply`` whose ``when``
matches the prompt (``re.search``, DOTALL), else the first item without ``when``. Conditional
items therefore win over earlier plain ones, so concurrent requests route by content. When
nothing fits, ``fallback(prompt)`` answers if given, else HTTP 500 "fake script exhausted".
The prompt is ``text`` on ``/generate`` (``input_ids`` become their numbers joined by spaces),
the messages rendered by :func:`render_chatml` on ``/v1/chat/completions``.

Failure injection: ``fail_next(n, status)`` fails the next n model requests (``status`` an HTTP
status, ``"hang"``: taken and never answered until the client gives up, or ``"drop"``: the
connection is cut half way through the answer); ``inject(Faults(seed, error=, hang=, drop=))``
fails model requests at random in those shares, decided by a hash of the seed, the request body
and how often that body was sent before (the same faults whatever the order of concurrent
requests; a retried request draws again); ``injected`` counts what was done. ``down()`` answers
503 everywhere (``/health`` too) until ``up()``; ``stop()`` then ``start()`` restarts on the
same port. ``hang()`` makes every route, ``/health`` included, take the request and never
answer (a wedged server) until ``unhang()``: such requests then get 503, neither recorded nor
touching the script; ``hung`` counts them. With ``api_key`` set, requests need
``Authorization: Bearer <key>`` (401 otherwise).
Recording: ``requests`` (method, path, json, headers without Authorization) and ``prompts``.

Token counting (deterministic, approximate): ``count_tokens(text) = ceil(len(text) / 4)``.
``prompt_tokens`` counts the prompt; ``completion_tokens`` counts the returned text before stop
trimming (no EOS token); ``max_new_tokens = N`` cuts the text to its first ``4 * N`` characters
with finish ``{"type": "length", "length": N}`` (when absent on /generate: 128, SGLang's
default). ``cached_tokens`` = ``L // 4`` where ``L`` is the longest common character prefix with
any earlier prompt + completion (the radix cache stores finished sequences), capped at
``prompt_tokens - 1``; ``POST /flush_cache`` forgets them.
Context checks as SGLang: ``prompt >= context`` or ``prompt + max_new_tokens > context`` → 400
with SGLang's exact messages.

Model speed (for benchmarks; off by default): with ``decode_tokens_per_s`` and/or
``prefill_tokens_per_s`` each completion is held, after any ``Reply.delay_s``, for
``(prompt_tokens - cached_tokens) / prefill + completion_tokens / decode`` seconds: a server that
prefills only what its prefix cache lacks and decodes at a fixed rate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tests.fakes.server import LoopbackServer, dropped_body, free_port

EOS_TOKEN_ID = 151645  # <|im_end|> for Qwen3 / Fathom models
CHARS_PER_TOKEN = 4
SAMPLING_KEYS = (
    "max_new_tokens", "stop", "stop_token_ids", "stop_regex", "temperature", "top_p", "top_k",
    "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n",
    "json_schema", "regex", "ebnf", "structural_tag", "ignore_eos", "skip_special_tokens",
    "spaces_between_special_tokens", "no_stop_trim", "stream_interval", "logit_bias",
    "sampling_seed", "custom_params",
)
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def count_tokens(text: str) -> int:
    """The fake's token count: one token per 4 characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass
class Reply:
    """One scripted answer. ``status`` != 200 sends an error body (``error`` is its message);
    ``finish_reason`` "length" or "abort" reports that finish; ``delay_s`` waits first;
    ``when`` is a regex the prompt must match for this item to be used."""

    text: str = ""
    finish_reason: str = "stop"
    status: int = 200
    error: str | None = None
    delay_s: float = 0.0
    when: str | None = None


ScriptItem = str | Reply | Callable[[str], str | Reply]
Fault = int | Literal["hang", "drop"]


@dataclass(frozen=True)
class Faults:
    """Random model-request faults: shares (0 to 1) answered ``status``, hanging, or dropped."""

    seed: int
    error: float = 0.0
    hang: float = 0.0
    drop: float = 0.0
    status: int = 503

    def pick(self, body: bytes, attempt: int) -> Fault | None:
        """The fault for the ``attempt``-th (0-based) request with this body, or None."""
        digest = hashlib.sha256(b"%d|%d|" % (self.seed, attempt) + body).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        for share, fault in ((self.error, self.status), (self.hang, "hang"), (self.drop, "drop")):
            if draw < share:
                return fault
            draw -= share
        return None


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class _Done:
    """A scripted reply applied to one request: the text to return and its accounting."""

    text: str
    finish: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int

    @property
    def matched(self) -> str | int | None:
        return self.finish.get("matched")


class FakeSGLang:
    """Scripted SGLang server (native + OpenAI routes) on 127.0.0.1. See the module docstring."""

    def __init__(
        self,
        script: list[ScriptItem] | None = None,
        *,
        context_length: int = 40960,
        model_path: str = "FractalAIResearch/Fathom-Search-4B",
        port: int | None = None,
        api_key: str | None = None,
        fallback: Callable[[str], str | Reply] | None = None,
        cache_report: bool = True,
        reasoning_parser: bool = True,
        decode_tokens_per_s: float | None = None,
        prefill_tokens_per_s: float | None = None,
    ) -> None:
        self.context_length = context_length
        self.model_path = model_path
        self.port = port or free_port()
        self.api_key = api_key  # when set, requests need "Authorization: Bearer <key>" (401 else)
        self.fallback = fallback
        self.cache_report = cache_report  # SGLang's --enable-cache-report for the OpenAI routes
        self.reasoning_parser = reasoning_parser  # --reasoning-parser: split at </think>
        self.decode_tokens_per_s = decode_tokens_per_s  # None: completions take no time
        self.prefill_tokens_per_s = prefill_tokens_per_s  # None: prompts take no time
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each request, for key-binding tests
        self.prompts: list[str] = []
        self._script: list[ScriptItem] = list(script or [])
        self._seen: list[str] = []
        self._lock = threading.Lock()
        self._fail: list[Fault] = []
        self._faults: Faults | None = None
        self._bodies: Counter[bytes] = Counter()  # model request bodies seen (for Faults.pick)
        self.injected: Counter[str] = Counter()  # faults done: "503", "hang", "drop"
        self._down = False
        self._hanging = False
        self.hung = 0  # requests taken while hanging (never answered)
        self._stopping = False
        self._server: LoopbackServer | None = None

    # ---- control (called from the test thread) -------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, *items: ScriptItem) -> None:
        """Append items to the script."""
        with self._lock:
            self._script.extend(items)

    @property
    def remaining(self) -> int:
        """How many script items are still unused."""
        with self._lock:
            return len(self._script)

    def fail_next(self, n: int, status: Fault = 503) -> None:
        """Make the next ``n`` model requests fail with ``status`` (an HTTP status, ``"hang"`` or
        ``"drop"``; the script is untouched)."""
        with self._lock:
            self._fail.extend([status] * n)

    def inject(self, faults: Faults | None) -> None:
        """Fail model requests at random from now on (``None``: stop); see :class:`Faults`."""
        with self._lock:
            self._faults = faults

    def down(self) -> None:
        """Answer every route, /health included, with 503 (a server starting or shutting down)."""
        self._down = True

    def up(self) -> None:
        """Undo :meth:`down`."""
        self._down = False

    def hang(self) -> None:
        """Take every request (``/health`` too) and never answer it, until :meth:`unhang`."""
        self._hanging = True

    def unhang(self) -> None:
        """Undo :meth:`hang`; the requests it held get 503."""
        self._hanging = False

    def start(self) -> Self:
        """Start serving (again, on the same port, after :meth:`stop`)."""
        self._stopping = False
        self._server = LoopbackServer(self._app(), port=self.port).start()
        return self

    def stop(self) -> None:
        """Stop serving; pending delayed replies are cut short."""
        self._stopping = True
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:  # the server runs in its own thread either way
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    # ---- script and accounting -----------------------------------------------------------

    def _take(self, prompt: str) -> Reply:
        with self._lock:
            pick = next((i for i, it in enumerate(self._script) if isinstance(it, Reply) and it.when
                         and re.search(it.when, prompt, re.DOTALL)), None)
            if pick is None:
                pick = next((i for i, it in enumerate(self._script)
                             if not (isinstance(it, Reply) and it.when)), None)
            item = self._script.pop(pick) if pick is not None else self.fallback
        if item is None:
            tail = prompt[-80:].replace("\n", "\\n")
            return Reply(status=500, error=f"fake script exhausted: no scripted reply for prompt ending {tail!r}")
        if callable(item):
            item = item(prompt)
        return Reply(text=item) if isinstance(item, str) else item

    def _check_context(self, n_in: int, max_new: int | None) -> None:
        ctx = self.context_length
        if n_in >= ctx:
            raise _HTTPError(400, f"The input ({n_in} tokens) is longer than the model's context length ({ctx} tokens).")
        if max_new is not None and n_in + max_new > ctx:
            raise _HTTPError(400, (
                f"Requested token count exceeds the model's maximum context length of {ctx} tokens. "
                f"You requested a total of {n_in + max_new} tokens: {n_in} tokens from the input "
                f"messages and {max_new} tokens for the completion. Please reduce the number of "
                "tokens in the input messages or the completion to fit within the limit."))

    def _cached(self, prompt: str, n_in: int) -> int:
        with self._lock:
            best = max((_common_prefix(prompt, s) for s in self._seen), default=0)
        return max(0, min(best // CHARS_PER_TOKEN, n_in - 1))

    async def _complete(self, prompt: str, reply: Reply, max_new: int | None,
                        stops: list[str], no_stop_trim: bool = False) -> _Done:
        """Apply ``reply`` to a request (status, delay, stop, length); remember the sequence."""
        await self._sleep(reply.delay_s)
        if reply.status != 200:
            raise _HTTPError(reply.status, reply.error or f"scripted HTTP {reply.status}")
        n_in = count_tokens(prompt)
        cached = self._cached(prompt, n_in)
        if reply.finish_reason == "abort":
            aborted = {"type": "abort", "message": reply.error or "Abort requested", "status_code": 500}
            return _Done("", aborted, n_in, 0, cached)
        text = reply.text
        finish: dict[str, Any] = {"type": "stop", "matched": EOS_TOKEN_ID}
        hits = [(text.find(s), s) for s in stops if s and s in text]
        if hits:
            pos, stop = min(hits)
            text, finish = text[: pos + len(stop)], {"type": "stop", "matched": stop}
        if max_new is not None and count_tokens(text) > max_new:
            text, finish = text[: max_new * CHARS_PER_TOKEN], {"type": "length", "length": max_new}
        elif reply.finish_reason == "length":
            finish = {"type": "length", "length": max_new if max_new is not None else count_tokens(text)}
        n_out = count_tokens(text)
        await self._sleep(self._model_seconds(n_in - cached, n_out))
        with self._lock:
            self._seen.append(prompt + text)
        matched = finish.get("matched")
        if isinstance(matched, str) and not no_stop_trim:
            text = text[: -len(matched)]
        return _Done(text, finish, n_in, n_out, cached)

    def _model_seconds(self, uncached_tokens: int, completion_tokens: int) -> float:
        """How long the modelled server takes to prefill and decode (0 unless speeds are set)."""
        prefill = uncached_tokens / self.prefill_tokens_per_s if self.prefill_tokens_per_s else 0.0
        decode = completion_tokens / self.decode_tokens_per_s if self.decode_tokens_per_s else 0.0
        return prefill + decode

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < end:  # cut short by stop()
            await asyncio.sleep(min(0.02, end - time.monotonic()))

    # ---- HTTP plumbing -------------------------------------------------------------------

    def _app(self) -> Starlette:
        r = self._route
        routes = [
            Route("/generate", r(self._generate, model=True), methods=["POST", "PUT"]),
            Route("/v1/chat/completions", r(self._chat, model=True, openai=True), methods=["POST"]),
            Route("/v1/completions", r(self._completions, model=True, openai=True), methods=["POST"]),
            Route("/v1/models", r(self._models), methods=["GET"]),
            Route("/flush_cache", r(self._flush), methods=["GET", "POST"]),
        ]
        for path in ("/health", "/health_generate", "/ready"):
            routes.append(Route(path, r(self._health, public=True), methods=["GET"]))
        for path in ("/model_info", "/get_model_info"):
            routes.append(Route(path, r(self._model_info), methods=["GET"]))
        for path in ("/server_info", "/get_server_info"):
            routes.append(Route(path, r(self._server_info), methods=["GET"]))
        return Starlette(routes=routes)

    def _route(self, handler: Callable[[Request, Any], Any], *, model: bool = False,
               openai: bool = False, public: bool = False) -> Callable[[Request], Any]:
        """Wrap a handler: record the request, then apply down/auth/fail_next and map errors."""

        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            if self._hanging:
                with self._lock:
                    self.hung += 1
                while self._hanging and not self._stopping:
                    await asyncio.sleep(0.02)
                return _error(503, "released after hanging", openai)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
            with self._lock:
                self.requests.append({"method": request.method, "path": request.url.path,
                                      "json": body, "headers": headers})
                self.authorizations.append(request.headers.get("authorization"))
                fail = self._fail.pop(0) if model and self._fail else None
                if model and fail is None and self._faults is not None:
                    digest = hashlib.sha256(raw).digest()
                    fail = self._faults.pick(raw, self._bodies[digest])
                    self._bodies[digest] += 1
                if fail is not None:
                    self.injected[str(fail)] += 1
            if fail == "hang":  # until the client gives up (or the fake stops)
                while not self._stopping and not await request.is_disconnected():
                    await asyncio.sleep(0.05)
                return _error(503, "released after hanging", openai)
            if fail == "drop":
                partial = json.dumps({"text": "a half-sent answer " * 20}).encode()
                return StreamingResponse(dropped_body(partial, len(partial) // 2), media_type="application/json")
            try:
                if self._down:
                    raise _HTTPError(503, "server is not ready (fake is down)")
                if self.api_key and not public and request.headers.get("authorization") != f"Bearer {self.api_key}":
                    return JSONResponse({"error": "Unauthorized"}, status_code=401)
                if fail is not None:
                    raise _HTTPError(fail, f"fake failure injected (HTTP {fail})")
                if model and not isinstance(body, dict):
                    raise _HTTPError(400, "request body must be a JSON object")
                return await handler(request, body)
            except _HTTPError as exc:
                return _error(exc.status, exc.message, openai)

        return endpoint

    # ---- native routes ---------------------------------------------------------------------

    async def _generate(self, request: Request, body: dict[str, Any]) -> Response:
        texts = body.get("text")
        if texts is None and body.get("input_ids") is not None:
            ids = body["input_ids"]
            texts = [" ".join(map(str, x)) for x in ids] if ids and isinstance(ids[0], list) else " ".join(map(str, ids))
        if texts is None:
            raise _HTTPError(400, "Either text, input_ids or input_embeds should be provided.")
        batch = isinstance(texts, list)
        prompts = texts if batch else [texts]
        params = body.get("sampling_params") or {}
        params_list = params if isinstance(params, list) else [params] * len(prompts)
        for sp in params_list:
            _check_sampling(sp)
        if body.get("stream"):
            if batch:
                raise _HTTPError(400, "the fake supports streaming for one prompt only")
            return _sse(self._generate_stream(prompts[0], params_list[0]))
        outs = []
        for prompt, sp in zip(prompts, params_list):
            with self._lock:
                self.prompts.append(prompt)
            outs.append(_native(await self._run_native(prompt, sp)))
        return JSONResponse(outs if batch else outs[0])

    async def _run_native(self, prompt: str, sp: dict[str, Any]) -> _Done:
        max_new = sp.get("max_new_tokens", 128)  # SGLang's default
        self._check_context(count_tokens(prompt), max_new)
        stops = sp.get("stop") or []
        return await self._complete(prompt, self._take(prompt), max_new,
                                    [stops] if isinstance(stops, str) else list(stops),
                                    bool(sp.get("no_stop_trim")))

    async def _generate_stream(self, prompt: str, sp: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        with self._lock:
            self.prompts.append(prompt)
        try:
            done = await self._run_native(prompt, sp)
        except _HTTPError as exc:  # SGLang reports errors inside the stream, after a 200
            yield {"error": {"message": exc.message, "type": "invalid_request_error",
                             "code": exc.status, "retryable": exc.status >= 500}}
            return
        pieces = _pieces(done.text)
        for i, _ in enumerate(pieces):
            last = i == len(pieces) - 1
            part = _Done("".join(pieces[: i + 1]), done.finish, done.prompt_tokens,
                         done.completion_tokens if last else count_tokens("".join(pieces[: i + 1])),
                         done.cached_tokens)
            out = _native(part)
            if not last:
                out["meta_info"]["finish_reason"] = None
            yield out

    async def _health(self, request: Request, body: Any) -> Response:
        return Response(status_code=200)

    async def _flush(self, request: Request, body: Any) -> Response:
        with self._lock:
            self._seen.clear()
        return PlainTextResponse("Cache flushed.\nPlease check backend logs for more details.\n")

    async def _model_info(self, request: Request, body: Any) -> Response:
        return JSONResponse({
            "model_path": self.model_path, "served_model_name": self.model_path,
            "tokenizer_path": self.model_path, "is_generation": True,
            "preferred_sampling_params": None, "weight_version": "default", "load_format": "auto",
            "reasoning_parser": "qwen3" if self.reasoning_parser else None,
            "tool_call_parser": "qwen25", "model_type": "qwen3",
            "architectures": ["Qwen3ForCausalLM"],
        })

    async def _server_info(self, request: Request, body: Any) -> Response:
        return JSONResponse({
            "model_path": self.model_path, "served_model_name": self.model_path,
            "context_length": self.context_length, "host": "127.0.0.1", "port": self.port,
            "tp_size": 1, "dp_size": 1, "enable_cache_report": self.cache_report,
            "internal_states": [{"last_gen_throughput": 0.0}], "version": "0.5.23-fake",
            "frontend": "python",
        })

    async def _models(self, request: Request, body: Any) -> Response:
        return JSONResponse({"object": "list", "data": [{
            "id": self.model_path, "object": "model", "created": 0, "owned_by": "sglang",
            "root": self.model_path, "max_model_len": self.context_length}]})

    # ---- OpenAI routes ---------------------------------------------------------------------

    async def _chat(self, request: Request, body: dict[str, Any]) -> Response:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _HTTPError(400, "messages must be a non-empty list")
        prompt = render_chatml(messages, body.get("tools"))
        max_new = body.get("max_completion_tokens") or body.get("max_tokens")
        self._check_context(count_tokens(prompt), max_new)
        done = await self._complete(prompt, self._take(prompt), max_new, _stops(body.get("stop")),
                                    bool(body.get("no_stop_trim")))
        msg, finish = self._split_message(done, body)
        usage = self._usage(done)
        cid, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", body.get("model") or self.model_path
        if not body.get("stream"):
            return JSONResponse({"id": cid, "object": "chat.completion", "created": int(time.time()),
                                 "model": model, "choices": [{"index": 0, "message": msg, "logprobs": None,
                                 "finish_reason": finish, "matched_stop": done.matched}], "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _sse(_chat_chunks(cid, model, msg, finish, done.matched, usage if include_usage else None))

    def _split_message(self, done: _Done, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Reasoning at ``</think>`` and ``<tool_call>`` blocks, as SGLang's parsers do."""
        text, reasoning, finish = done.text, None, _openai_finish(done.finish)
        if self.reasoning_parser and body.get("separate_reasoning", True) and "</think>" in text:
            head, _, text = text.partition("</think>")
            reasoning, text = head.replace("<think>", "", 1).strip(), text.strip()
        calls = []
        if body.get("tools") and body.get("tool_choice") != "none" and finish != "length":
            for n, raw in enumerate(_TOOL_CALL.findall(text)):
                try:
                    call = json.loads(raw)
                except ValueError:
                    continue
                args = call.get("arguments", {})
                calls.append({"id": f"call_{uuid.uuid4().hex[:12]}", "index": n, "type": "function",
                              "function": {"name": call.get("name"), "arguments":
                                           args if isinstance(args, str) else json.dumps(args)}})
            if calls:
                text, finish = _TOOL_CALL.sub("", text).strip(), "tool_calls"
        msg = {"role": "assistant", "content": text or (None if calls else ""),
               "reasoning_content": reasoning, "tool_calls": calls or None}
        return msg, finish

    def _usage(self, done: _Done) -> dict[str, Any]:
        return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
                "total_tokens": done.prompt_tokens + done.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": done.cached_tokens} if self.cache_report else None}

    async def _completions(self, request: Request, body: dict[str, Any]) -> Response:
        prompt = body.get("prompt")
        prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
        if not isinstance(prompt, str):
            raise _HTTPError(400, "prompt must be a string")
        max_new = body.get("max_tokens", 16)  # OpenAI's and SGLang's default for completions
        self._check_context(count_tokens(prompt), max_new)
        done = await self._complete(prompt, self._take(prompt), max_new, _stops(body.get("stop")))
        return JSONResponse({"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion",
                             "created": int(time.time()), "model": body.get("model") or self.model_path,
                             "choices": [{"index": 0, "text": done.text, "logprobs": None,
                                          "finish_reason": _openai_finish(done.finish),
                                          "matched_stop": done.matched}], "usage": self._usage(done)})


# ---- helpers -------------------------------------------------------------------------------


def render_chatml(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """Render chat messages as a Qwen-style ChatML prompt (what ``when`` regexes match)."""
    parts = []
    if tools:
        parts.append("<|im_start|>system\n# Tools\n" + "\n".join(json.dumps(t) for t in tools) + "<|im_end|>\n")
    for m in messages:
        content = m.get("content") or ""
        if isinstance(content, list):  # OpenAI content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        for call in m.get("tool_calls") or []:
            fn = call.get("function", {})
            content += f'\n<tool_call>\n{{"name": "{fn.get("name")}", "arguments": {fn.get("arguments")}}}\n</tool_call>'
        if m.get("role") == "tool":
            content = f"<tool_response>\n{content}\n</tool_response>"
        parts.append(f"<|im_start|>{m.get('role', 'user')}\n{content}<|im_end|>\n")
    return "".join(parts) + "<|im_start|>assistant\n"


def _check_sampling(sp: Any) -> None:
    if not isinstance(sp, dict):
        raise _HTTPError(400, "sampling_params must be an object")
    unknown = [k for k in sp if k not in SAMPLING_KEYS]
    if unknown:
        expected = ", ".join(f"`{k}`" for k in SAMPLING_KEYS)
        raise _HTTPError(400, f"unknown field `{unknown[0]}`, expected one of {expected}")
    checks = [
        ("max_new_tokens", lambda v: isinstance(v, int) and v >= 0, "must be at least 0"),
        ("temperature", lambda v: v >= 0, "must be non-negative"),
        ("top_p", lambda v: 0 < v <= 1, "must be in (0, 1]"),
        ("repetition_penalty", lambda v: 0 < v <= 2, "must be in (0, 2]"),
    ]
    for key, ok, why in checks:
        value = sp.get(key)
        if value is not None and not ok(value):
            raise _HTTPError(400, f"{key} {why}, got {value}.")


def _stops(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by binary search on slices (C-speed on long prompts)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _native(done: _Done) -> dict[str, Any]:
    return {"text": done.text, "output_ids": list(range(done.completion_tokens)), "meta_info": {
        "id": uuid.uuid4().hex, "finish_reason": done.finish, "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens, "cached_tokens": done.cached_tokens,
        "reasoning_tokens": 0, "weight_version": "default", "num_retractions": 0, "e2e_latency": 0.0}}


def _openai_finish(finish: dict[str, Any]) -> str:
    return str(finish.get("type", "stop"))


def _pieces(text: str, size: int = 16) -> list[str]:
    return [text[i: i + size] for i in range(0, len(text), size)] or [""]


def _error(status: int, message: str, openai: bool) -> JSONResponse:
    if openai:
        kind = "BadRequestError" if status == 400 else "InternalServerError" if status >= 500 else "Error"
        return JSONResponse({"object": "error", "message": message, "type": kind, "param": None,
                             "code": status}, status_code=status)
    return JSONResponse({"error": {"message": message}}, status_code=status)


def _sse(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async for event in events:
            yield f"data: {json.dumps(event)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


async def _chat_chunks(cid: str, model: str, msg: dict[str, Any], finish: str,
                       matched: Any, usage: dict[str, Any] | None) -> AsyncIterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason,
                             **({"matched_stop": matched} if reason else {})}], "usage": None}

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(msg["reasoning_content"]) if msg["reasoning_content"] else []:
        yield chunk({"reasoning_content": piece})
    for piece in _pieces(msg["content"]) if msg["content"] else []:
        yield chunk({"content": piece})
    for call in msg["tool_calls"] or []:
        yield chunk({"tool_calls": [call]})
    yield chunk({}, finish)
    if usage is not None:
        yield {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
               "choices": [], "usage": usage}


# ---- a search model that keeps researching ------------------------------------------------


def keep_researching(calls_for_round: Callable[[int], list[dict[str, Any]]], answer: str) -> Callable[[str], str]:
    """A Fathom-Search model as a pure function of its prompt, for ``fallback=``: turn ``r`` (the
    number of assistant turns in the prompt, this one included) writes the tool calls
    ``calls_for_round(r)`` (``{"name", "arguments"}`` dicts), until its latest user turn says the
    research budget is used up: then it answers ``\\boxed{answer}``. Being a function of the prompt,
    it replies the same after a crash and resume.
    """

    def reply(prompt: str) -> str:
        round_no = prompt.count("<|im_start|>assistant\n<think>")
        latest_user_turn = prompt[prompt.rfind("<|im_start|>user"):]
        if "budget is used up" in latest_user_turn:
            return f"Told to stop after {round_no - 1} turns.</think>\n\nThe answer is \\boxed{{{answer}}}."
        calls = "\n".join(
            "<tool_call>\n" + json.dumps(c, ensure_ascii=False) + "\n</tool_call>" for c in calls_for_round(round_no)
        )
        return f"Turn {round_no}: more sources to check.</think>\n\n{calls}"

    return reply

"""Async OpenAI-compatible chat client (query LLM for page extraction, eval judge).

It uses the raw ``openai`` SDK rather than LangChain's ``ChatOpenAI`` because the latter drops
SGLang's ``reasoning_content``. The endpoint is named by a spec string, as in settings:
``"none"``, ``"openai:MODEL"`` or an OpenAI-compatible base URL such as
``http://127.0.0.1:8905/v1`` (the model is then the first one that ``GET /v1/models`` lists).

Retries are done here, not by the SDK, so every client shares one policy (:mod:`fathom.retry`:
connection errors, timeouts, 408/429/5xx; backoff with jitter; a 4xx is never retried). Errors are one-line :mod:`fathom.models.base`
exceptions; the API key is never logged.

A server that takes a request and then says nothing is caught as the SGLang client catches it
(:class:`~fathom.models.watch.SilenceWatch`, with ``GET /v1/models`` as the probe): silent for
``answer_timeout_s`` it is given up with :class:`ModelNotAnsweringError`, not retried, and
``model_wait`` progress events go out while the client waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fathom.aio import AsyncClosing
from fathom.errors import one_line
from fathom.models.base import ChatResult, ContextLengthError, ModelError
from fathom.models.retry import (
    RETRY_STATUSES,
    TransientModelError,
    call_model,
    connect_reason,
    error_message,
    is_context_overflow,
    retry_policy,
)
from fathom.models.watch import ANSWER_TIMEOUT_S, SilenceWatch
from fathom.tls import openai_ssl_context

log = logging.getLogger(__name__)
T = TypeVar("T")

OPENAI_BASE_URL = "https://api.openai.com/v1"
CONNECT_TIMEOUT_S = 10.0


class ChatClient(AsyncClosing):
    """One chat model behind an OpenAI-compatible endpoint.

    ``base_url=None`` means OpenAI itself (an API key is then required). With a base URL and no
    key, "EMPTY" is sent, as SGLang and vLLM expect. An empty ``model`` is discovered from
    ``/v1/models`` on first use. Use ``async with`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str | None,
        model: str | None,
        *,
        api_key: str | None,
        timeout_s: float = 120,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        name: str = "query LLM",
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
    ) -> None:
        if base_url is None and not api_key:
            raise ModelError(f"{name} openai:{model or '?'} needs an API key: set OPENAI_API_KEY")
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.is_openai = base_url is None
        self.model = model or ""
        self.name = name
        self.timeout_s = float(timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = backoff_s
        self._model_lock = asyncio.Lock()
        self._api_key = api_key or "EMPTY"
        self._sdk: Any = None  # the OpenAI SDK client, built on first use (see _client)
        self.answer_timeout_s = float(answer_timeout_s)
        self._watch = SilenceWatch(name=name, url=self.base_url, where=self._where(),
                                   answer_timeout_s=self.answer_timeout_s, probe=self._alive,
                                   probe_what="GET /v1/models")

    @property
    def _client(self) -> Any:
        """The OpenAI SDK client. Built on first use: importing the SDK takes longer than a
        whole research turn's overhead, and most runs never call their judge (see verify)."""
        if self._sdk is None:
            import httpx2
            import openai

            self._sdk = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                timeout=httpx2.Timeout(self.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.timeout_s)),
                max_retries=0,  # retried below, with our own policy and messages
                # the SDK's default client, but with the process's one TLS context (see fathom.tls)
                http_client=openai.DefaultAsyncHttpxClient(verify=openai_ssl_context()),
            )
        return self._sdk

    @classmethod
    def from_spec(
        cls, spec: str, *, api_key: str | None, timeout_s: float = 120, max_retries: int = 3,
        backoff_s: float = 0.5, name: str = "query LLM", answer_timeout_s: float = ANSWER_TIMEOUT_S,
    ) -> ChatClient | None:
        """Build a client from ``"none"`` (→ ``None``), ``"openai:MODEL"`` or a base URL.

        Raises :class:`ModelError` for a spec it does not understand or an OpenAI spec without key.
        """
        spec = spec.strip()
        common: dict[str, Any] = {"api_key": api_key, "timeout_s": timeout_s,
                                  "max_retries": max_retries, "backoff_s": backoff_s, "name": name,
                                  "answer_timeout_s": answer_timeout_s}
        if spec in ("", "none"):
            return None
        if spec.startswith("openai:"):
            model = spec.removeprefix("openai:").strip()
            if not model:
                raise ModelError(f"{name} spec 'openai:' needs a model name, e.g. openai:gpt-4.1-mini")
            return cls(None, model, **common)
        if spec.startswith(("http://", "https://")):
            return cls(spec, None, **common)
        raise ModelError(
            f"{name} spec {spec!r} is not understood: use 'none', 'openai:MODEL' or an "
            "OpenAI-compatible base URL such as http://127.0.0.1:8905/v1"
        )

    def __repr__(self) -> str:  # never the key
        return f"ChatClient({self.base_url!r}, model={self.model!r})"

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        tools: list[dict[str, Any]] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> ChatResult:
        """One non-streaming chat completion.

        ``extra_body`` carries server-specific fields (SGLang: ``top_k``, ``repetition_penalty``,
        ``chat_template_kwargs``…). Tool-call arguments are returned as raw JSON text.
        """
        model = await self.resolve_model()
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "temperature": temperature}
        # OpenAI's newer models reject max_tokens; OpenAI-compatible servers all accept it.
        kwargs["max_completion_tokens" if self.is_openai else "max_tokens"] = max_tokens
        if tools:
            kwargs["tools"] = tools
        if extra_body:
            kwargs["extra_body"] = extra_body
        resp = await self._call("chat", lambda: self._client.chat.completions.create(**kwargs))
        if not resp.choices:
            raise ModelError(f"{self._where()} returned no choices")
        if resp.choices[0].finish_reason == "abort":  # SGLang's finish for a request it dropped
            raise ModelError(f"{self._where()} aborted the completion")
        return _to_result(resp)

    async def resolve_model(self) -> str:
        """The model name: as configured, else the first id served at ``/v1/models`` (cached)."""
        if self.model:
            return self.model
        async with self._model_lock:
            if not self.model:
                page = await self._call("models", lambda: self._client.models.list())
                ids = [m.id for m in page.data]
                if not ids:
                    raise ModelError(f"{self._where()} serves no models (GET /v1/models is empty)")
                self.model = ids[0]
        return self.model

    async def aclose(self) -> None:
        """Close the connection pool (if the client was ever used) and any probe in flight."""
        await self._watch.aclose()
        if self._sdk is not None:
            await self._sdk.close()

    # ---- retries and error mapping -------------------------------------------------------

    def _where(self) -> str:
        return f"{self.name} at {self.base_url}"

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        request = "POST /v1/chat/completions" if what == "chat" else "GET /v1/models"
        return await call_model(
            lambda: self._attempt(make, request),
            retry_policy(self.max_retries, self.backoff_s),
            where=self._where(),
            label=f"{self._where()} ({what})",
            logger=log,
        )

    async def _attempt(self, make: Callable[[], Awaitable[T]], request: str) -> T:
        import openai  # imported by the client already (see _client)

        try:
            return await self._watch.wait(make(), what=request)
        except openai.APITimeoutError:
            raise TransientModelError(f"no answer within {self.timeout_s:g} s") from None
        except openai.APIConnectionError as exc:
            raise TransientModelError(connect_reason(exc)) from None
        except openai.APIStatusError as exc:
            message = error_message(exc.body) if exc.body is not None else one_line(exc.message)
            if exc.status_code in RETRY_STATUSES:
                raise TransientModelError(f"HTTP {exc.status_code}: {message}") from None
            raise self._client_error(exc.status_code, message) from None

    async def _alive(self, timeout_s: float) -> bool:
        """Ask ``GET /v1/models`` (every OpenAI-compatible server has it); any answer short of 5xx,
        a refusal included, counts as a sign of life."""
        import openai

        try:
            await self._client.models.list(timeout=timeout_s)
        except openai.APIStatusError as exc:
            return exc.status_code < 500
        return True

    def _client_error(self, status: int, message: str) -> ModelError:
        if is_context_overflow(status, message):
            return ContextLengthError(f"prompt does not fit the context of the {self._where()}: {message}")
        if status in (401, 403):
            return ModelError(f"{self._where()} refused the request (HTTP {status}): check the API key")
        if status == 404:
            return ModelError(f"{self._where()}: not found (model {self.model!r}?): {message}")
        return ModelError(f"{self._where()} rejected the request (HTTP {status}): {message}")


def _to_result(resp: Any) -> ChatResult:
    choice = resp.choices[0]
    msg = choice.message
    calls = [
        {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments or "{}"}
        for tc in (msg.tool_calls or [])
        if getattr(tc, "function", None) is not None
    ]
    extra = msg.model_extra or {}
    # SGLang and DeepSeek say reasoning_content; vLLM's newer releases say reasoning.
    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
    usage = resp.usage
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return ChatResult(
        content=msg.content or "",
        tool_calls=calls,
        finish_reason=choice.finish_reason or "stop",
        prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
        completion_tokens=(usage.completion_tokens or 0) if usage else 0,
        cached_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
        reasoning=reasoning if isinstance(reasoning, str) else None,
    )

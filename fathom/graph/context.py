"""The runtime context of a research run: settings and the live clients the nodes use.

Context is never checkpointed, so clients and secrets live here, not in state. The CLI builds one
:class:`Services` per invocation; LangGraph Studio and embedders may pass nothing, in which case
the nodes build services from the environment once per event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel

from fathom.models.chat import ChatClient
from fathom.models.sglang import SGLangClient
from fathom.protocols.base import SearchProtocol
from fathom.protocols.chat import ChatToolsProtocol
from fathom.protocols.fathom import FathomProtocol
from fathom.protocols.prompts import CHAT_SYSTEM_PROMPT, Prompt, search_prompt
from fathom.settings import SECRET_ENV_VARS, Settings
from fathom.tools.cache import ToolCache
from fathom.tools.toolbox import Toolbox


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


@dataclass
class Services:
    """Everything a node needs to act: settings, the search protocol and the toolbox."""

    settings: Settings
    protocol: SearchProtocol
    toolbox: Toolbox
    synth: SGLangClient | None = None  # Fathom-Synthesizer, for deep research reports
    judge: ChatClient | None = None  # checks answers against the evidence (see nodes/verify)
    clients: list[Any] = field(default_factory=list)  # closed by aclose()
    deadlines: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, *, chat_model: BaseChatModel | None = None) -> "Services":
        """Build clients for ``settings``; ``chat_model`` switches the search loop to tool calling."""
        prompt = search_prompt(settings.prompt_file)
        clients: list[Any] = []

        def keep(client: Any) -> Any:
            clients.append(client)
            return client

        protocol: SearchProtocol
        if chat_model is not None:
            protocol = ChatToolsProtocol(chat_model, _chat_prompt(prompt), temperature=settings.temperature)
        elif settings.search_protocol == "chat":
            client = keep(_search_model_chat(settings, "search model"))
            protocol = ChatToolsProtocol(client, _chat_prompt(prompt), temperature=settings.temperature)
        else:
            sglang = keep(_sglang(settings, settings.search_model_url, "search model"))
            protocol = FathomProtocol(
                sglang, prompt, temperature=settings.temperature, repetition_penalty=settings.repetition_penalty
            )
        query_llm = ChatClient.from_spec(
            settings.query_llm,
            api_key=_secret(settings.query_llm_api_key) or _secret(settings.openai_api_key),
            timeout_s=settings.tool_timeout_s,
        )
        if query_llm is not None:
            keep(query_llm)
        cache = None
        if not settings.no_cache:
            cache = keep(ToolCache.open(settings.db_url, ttl_s=settings.cache_ttl_s, max_rows=settings.cache_max_rows))
        toolbox = keep(Toolbox.from_settings(settings, query_llm=query_llm, cache=cache))
        synth = keep(_sglang(settings, settings.synth_model_url, "synthesizer model"))
        # The judge of answers: the query LLM when configured, else the search model's chat route.
        judge = query_llm or keep(_search_model_chat(settings, "judge (search model)"))
        return cls(settings, protocol, toolbox, synth=synth, judge=judge, clients=clients)

    def deadline(self, run_key: str) -> float:
        """The wall-clock deadline of one run in this process (a resumed run gets a fresh budget)."""
        return self.deadlines.setdefault(run_key, time.monotonic() + self.settings.max_wall_seconds)

    async def aclose(self) -> None:
        for client in reversed(self.clients):
            await client.aclose()

    async def __aenter__(self) -> "Services":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _sglang(settings: Settings, url: str, name: str) -> SGLangClient:
    return SGLangClient(
        url,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_retries,
        api_key=_secret(settings.model_api_key),
        name=name,
    )


def _search_model_chat(settings: Settings, name: str) -> ChatClient:
    """The search model's OpenAI-compatible route (SGLang serves ``/v1`` beside ``/generate``)."""
    client = ChatClient.from_spec(
        settings.search_model_url + "/v1",
        api_key=_secret(settings.model_api_key),
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_retries,
        name=name,
    )
    assert client is not None  # a URL spec always builds a client
    return client


def _chat_prompt(prompt: Prompt) -> str:
    # A user's prompt file is written for the raw Fathom protocol; chat models get ours unless
    # the file has no schema slot (then it is a plain system prompt and fits either protocol).
    return CHAT_SYSTEM_PROMPT if prompt.source == "builtin" or "{func_schemas}" in prompt.text else prompt.text


@dataclass
class FathomContext:
    """Runtime context of the research graph. Every field is optional.

    ``settings``: overrides the environment (a dict of setting names is accepted too, as LangGraph
    Studio sends JSON); ``services``: prebuilt clients (the CLI and tests pass these);
    ``chat_model``: any langchain-core chat model to research with instead of SGLang.
    """

    settings: Settings | dict[str, Any] | None = None
    services: Services | None = None
    chat_model: BaseChatModel | None = None


_cached: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Services]]" = weakref.WeakKeyDictionary()


async def get_services(context: FathomContext | dict[str, Any] | None) -> Services:
    """The services for this run: the context's own, or ones built from settings and cached per loop.

    Building them reads files and may create the data directory, so it runs in a worker thread:
    the event loop (LangGraph's server shares it between runs) is never blocked.
    """
    if isinstance(context, dict):
        context = FathomContext(**context)
    context = context or FathomContext()
    if context.services is not None:
        return context.services
    settings = context.settings
    if not isinstance(settings, Settings):
        settings = Settings.load(settings or {})
    per_loop = _cached.setdefault(asyncio.get_running_loop(), {})
    key = (settings.model_dump_json(), _secrets_digest(settings), id(context.chat_model))
    if key not in per_loop:
        built = await asyncio.to_thread(Services.from_settings, settings, chat_model=context.chat_model)
        per_loop.setdefault(key, built)
    return per_loop[key]


def _secrets_digest(settings: Settings) -> str:
    """A digest of the API keys: ``model_dump_json`` masks them, yet clients differ by key."""
    keys = [_secret(getattr(settings, name)) or "" for name in SECRET_ENV_VARS]
    return hashlib.sha256("\0".join(keys).encode()).hexdigest()

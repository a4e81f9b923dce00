"""The runtime context of a research run, and how the graph hands services to its nodes.

Context is never checkpointed, so clients and secrets live here, not in state. The CLI passes
prebuilt :class:`~fathom.ports.Services`; LangGraph Studio and embedders may pass only settings
(or nothing), and the graph's services provider (see :func:`fathom.app.services.services_for`)
builds them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

from fathom.errors import ConfigError
from fathom.ports import Services


@dataclass
class FathomContext:
    """Runtime context of the research graph. Every field is optional.

    ``settings``: a ``fathom.Settings`` (or a dict of setting names, as LangGraph Studio sends
    JSON) that overrides the environment; ``services``: prebuilt clients (the CLI and tests pass
    these); ``chat_model``: any langchain-core chat model to research with instead of SGLang.
    """

    settings: Any = None
    services: Services | None = None
    chat_model: BaseChatModel | None = None


ServicesProvider = Callable[[FathomContext], Awaitable[Services]]


def as_context(context: FathomContext | dict[str, Any] | None) -> FathomContext:
    """The context as a :class:`FathomContext` (Studio sends a dict, embedders may send nothing)."""
    if isinstance(context, FathomContext):
        return context
    if isinstance(context, dict):
        try:
            return FathomContext(**context)
        except TypeError:
            raise ConfigError(f"unknown context keys: {sorted(set(context) - {'settings', 'services', 'chat_model'})}") from None
    return FathomContext()


async def given_services(context: FathomContext) -> Services:
    """The provider of a graph built without one: the context must bring its services."""
    if context.services is None:
        raise ConfigError(
            "this research graph has no services: pass FathomContext(services=...), "
            "or build the graph with fathom.build_graph(), which builds them from settings"
        )
    return context.services

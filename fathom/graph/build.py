"""build_graph(): the research state machine, wiring only.

    START -> search --(tool calls)--> read (one Send per call) --> search
             search --(answer)--> verify --(sent back)--> search
                                         --(accepted, answer only)--> END
                                         --(accepted, deep research)--> plan [-> review] -> write -> END

Each node is ``async (state, services) -> update``; the graph asks its services provider for
the run's :class:`~fathom.ports.Services` and hands them over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from fathom.graph.context import (
    FathomContext,
    ServicesProvider,
    as_context,
    given_services,
)
from fathom.graph.state import InputState, OutputState, ReadTask, ResearchState
from fathom.nodes.plan import plan, route_after_plan
from fathom.nodes.read import read
from fathom.nodes.review import review, route_after_review
from fathom.nodes.search import route_after_search, search
from fathom.nodes.verify import route_after_verify, verify
from fathom.nodes.write import write
from fathom.ports import Services

Node = Callable[[Any, Services], Awaitable[dict[str, Any]]]


def _served(node: Node, provide: ServicesProvider) -> Callable[..., Awaitable[dict[str, Any]]]:
    """``node`` as LangGraph calls it: with the run's services looked up from its context."""

    async def run(state: Any, runtime: Runtime[FathomContext]) -> dict[str, Any]:
        return await node(state, await provide(as_context(runtime.context)))

    run.__name__, run.__qualname__, run.__doc__ = node.__name__, node.__qualname__, node.__doc__
    return run


def _on_loop(route: Callable[[Any], Any]) -> Callable[[Any], Awaitable[Any]]:
    """``route`` as a coroutine. LangGraph runs a plain function in a worker thread (in async
    runs), and a route only reads the state: the thread hop per step cost more than the route."""

    async def route_here(state: Any) -> Any:
        return route(state)

    route_here.__name__, route_here.__qualname__, route_here.__doc__ = route.__name__, route.__qualname__, route.__doc__
    return route_here


def build_builder(services: ServicesProvider | None = None) -> StateGraph:
    """The uncompiled graph, for callers that compile it themselves."""
    provide = services or given_services
    builder = StateGraph(
        ResearchState, context_schema=FathomContext, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("search", _served(search, provide))
    builder.add_node("read", _served(read, provide), input_schema=ReadTask)
    builder.add_node("verify", _served(verify, provide))
    builder.add_node("plan", _served(plan, provide))
    builder.add_node("review", review)
    builder.add_node("write", _served(write, provide))
    builder.add_edge(START, "search")
    builder.add_conditional_edges("search", _on_loop(route_after_search), ["read", "verify", "search", "plan", END])
    builder.add_edge("read", "search")
    builder.add_conditional_edges("verify", _on_loop(route_after_verify), {"search": "search", "plan": "plan", "done": END})
    builder.add_conditional_edges("plan", _on_loop(route_after_plan), ["review", "write"])
    builder.add_conditional_edges("review", _on_loop(route_after_review), {"write": "write", "done": END})
    builder.add_edge("write", END)
    return builder


def build_graph(
    *, services: ServicesProvider | None = None, checkpointer: Any = None, name: str = "fathom"
) -> CompiledStateGraph:
    """The compiled research graph.

    ``services`` gives each run its clients (default: the context must carry them; use
    :func:`fathom.build_graph` to build them from settings). With no checkpointer the graph runs
    under its parent's when embedded as a subgraph.
    """
    return build_builder(services).compile(checkpointer=checkpointer, name=name)

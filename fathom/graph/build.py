"""build_graph(): the research state machine, wiring only.

    START -> search --(tool calls)--> read (one Send per call) --> search
             search --(answer)--> verify --(sent back)--> search
                                         --(accepted, answer only)--> END
                                         --(accepted, deep research)--> plan [-> review] -> write -> END
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from fathom.graph.context import FathomContext
from fathom.graph.state import InputState, OutputState, ReadTask, ResearchState
from fathom.nodes.plan import plan, route_after_plan
from fathom.nodes.read import read
from fathom.nodes.review import review, route_after_review
from fathom.nodes.search import route_after_search, search
from fathom.nodes.verify import route_after_verify, verify
from fathom.nodes.write import write


def build_builder() -> StateGraph:
    """The uncompiled graph, for callers that compile it themselves."""
    builder = StateGraph(
        ResearchState, context_schema=FathomContext, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("search", search)
    builder.add_node("read", read, input_schema=ReadTask)
    builder.add_node("verify", verify)
    builder.add_edge(START, "search")
    builder.add_conditional_edges("search", route_after_search, ["read", "verify", "search"])
    builder.add_edge("read", "search")
    builder.add_node("plan", plan)
    builder.add_node("review", review)
    builder.add_node("write", write)
    builder.add_conditional_edges("verify", route_after_verify, {"search": "search", "plan": "plan", "done": END})
    builder.add_conditional_edges("plan", route_after_plan, ["review", "write"])
    builder.add_conditional_edges("review", route_after_review, {"write": "write", "done": END})
    builder.add_edge("write", END)
    return builder


def build_graph(*, checkpointer: Any = None, name: str = "fathom") -> CompiledStateGraph:
    """The compiled research graph.

    With no checkpointer it runs under its parent's when embedded as a subgraph, and is what
    ``langgraph dev`` serves. Input ``{"question": str}``; output ``answer``, ``sources``, ``status``.
    """
    return build_builder().compile(checkpointer=checkpointer, name=name)

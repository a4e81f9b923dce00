"""The graph LangGraph Studio serves (``langgraph.json``): compiled without a checkpointer."""

from fathom.graph.build import build_graph

graph = build_graph()

"""The research graph: state, context and wiring."""

from fathom.graph.build import build_builder, build_graph
from fathom.graph.context import FathomContext
from fathom.graph.state import InputState, OutputState, ResearchState
from fathom.ports import Services

__all__ = [
    "FathomContext",
    "InputState",
    "OutputState",
    "ResearchState",
    "Services",
    "build_builder",
    "build_graph",
]

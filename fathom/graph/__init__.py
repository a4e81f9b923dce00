"""The research graph: state, context and wiring.

Names are imported on use: nodes import ``fathom.graph.state``, and an eager import of the wiring
here would import the nodes back while they load.
"""

from importlib import import_module
from typing import Any

__all__ = ["FathomContext", "InputState", "OutputState", "ResearchState", "build_builder", "build_graph"]

_HOMES = {
    "FathomContext": "fathom.graph.context",
    "InputState": "fathom.graph.state",
    "OutputState": "fathom.graph.state",
    "ResearchState": "fathom.graph.state",
    "build_builder": "fathom.graph.build",
    "build_graph": "fathom.graph.build",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'fathom.graph' has no attribute {name!r}")

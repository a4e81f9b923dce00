"""Fathom: durable deep research with small models, as a LangGraph state machine.

``from fathom import build_graph`` gives the research graph (services built from settings when
the run's context brings none). Names are imported lazily so that light entry points (settings,
the CLI's help) stay fast.
"""

from importlib import import_module
from typing import Any

__all__ = ["FathomContext", "FathomError", "ResearchConfig", "Services", "Settings", "__version__", "build_graph"]
__version__ = "0.2.0"

_EXPORTS = {
    "build_graph": ("fathom.app.services", "research_graph"),
    "FathomContext": ("fathom.graph.context", "FathomContext"),
    "Services": ("fathom.ports", "Services"),
    "ResearchConfig": ("fathom.ports", "ResearchConfig"),
    "Settings": ("fathom.settings", "Settings"),
    "FathomError": ("fathom.errors", "FathomError"),
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'fathom' has no attribute {name!r}")

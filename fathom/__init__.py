"""Fathom: durable deep research with small models, as a LangGraph state machine.

``from fathom import build_graph`` gives the research graph; it is imported lazily so that
light entry points (settings, the CLI's argument errors) stay fast.
"""

from typing import Any

__all__ = ["FathomContext", "Services", "Settings", "build_graph"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("FathomContext", "Services", "build_graph"):
        import fathom.graph

        return getattr(fathom.graph, name)
    if name == "Settings":
        from fathom.settings import Settings

        return Settings
    raise AttributeError(f"module 'fathom' has no attribute {name!r}")

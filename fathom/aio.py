"""``async with`` for everything that holds connections: one base class instead of a copy per class.

Imports nothing from Fathom, so every layer may use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

__all__ = ["AsyncClosing"]


class AsyncClosing(ABC):
    """Closed by :meth:`aclose`; ``async with obj:`` hands ``obj`` in and closes it on the way out."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the object holds (connection pools, clients)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

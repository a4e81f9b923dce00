"""An operation tried again on a new connection, when the server dropped the one it had.

Only before anything was committed, and only while no plan (see plans.py) got an answer: a plan
cannot start over, but one whose first statement found the connection dead goes on from it.
"""

from __future__ import annotations

from types import GeneratorType
from typing import Any

from sqlalchemy import exc as sa_exc

from fathom.store.plans import Plan, continue_plan
from fathom.store.urls import Backend

__all__ = ["Tries"]


class Tries:
    """The attempts of one operation on a server database: whether the latest got as far as its
    COMMIT, and the plans among its arguments (generators, see plans.py), which cannot start
    over. A plan whose first statement found the connection dead was never answered, though:
    the next attempt goes on from that statement, on a new connection."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.commit = False
        self._args = args
        self._plans = {i: _Resumable(a) for i, a in enumerate(args) if isinstance(a, GeneratorType)}

    def args(self) -> tuple[Any, ...]:
        """The arguments for this attempt."""
        self.commit = False
        return tuple(self._plans[i].attempt() if i in self._plans else a for i, a in enumerate(self._args))

    def may_repeat(self, backend: Backend, exc: sa_exc.DBAPIError) -> bool:
        """Whether the operation that failed with ``exc`` may run once more on a new connection:
        the server dropped the connection, nothing was committed, and no plan got an answer."""
        return (backend != "sqlite" and bool(exc.connection_invalidated) and not self.commit
                and not any(p.answered for p in self._plans.values()))


class _Resumable:
    """A plan driven through :meth:`attempt`; see :class:`Tries`."""

    def __init__(self, plan: Plan[Any]) -> None:
        self.plan = plan
        self.pending: Any = None  # the first statement, yielded and not yet answered
        self.answered = False

    def attempt(self) -> Plan[Any]:
        """The plan from its first unanswered statement (closing this leaves it open till answered)."""
        assert not self.answered, "a plan that got answers is never run again"
        return self._run()

    def _run(self) -> Plan[Any]:
        if self.pending is None:
            try:
                self.pending = next(self.plan)
            except StopIteration as stop:
                return stop.value
        value = yield self.pending  # closed here (connection dead): the plan stays as it is
        self.answered = True
        return (yield from continue_plan(self.plan, value))

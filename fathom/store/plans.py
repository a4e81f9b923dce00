"""Database operations as *plans*: generators that yield SQL statements and get their results back.

The saver's hot operations (``put``, ``put_writes``, ``get_tuple``) are written once, as plans,
and run by whichever driver fits the call:

- :func:`run_plan` executes each statement through SQLAlchemy Core on a ``Connection``
  (PostgreSQL and MySQL, and every operation that needs one consistent read transaction);
- :func:`run_plan_sqlite` and :func:`run_plan_aiosqlite` execute the same statements on a
  raw sqlite3 / aiosqlite connection. Through SQLAlchemy's aiosqlite adapter a statement costs
  about four thread round trips (cursor, execute, fetch, close) plus Core's per-call work;
  :func:`run_plan_aiosqlite` runs a whole plan, transaction included, in one round trip to
  the aiosqlite connection's thread. A round trip (a thread wake-up each way) costs more
  than a small statement, so this is what makes SQLite gets and puts cheap.

Statements stay SQLAlchemy Core constructs (the single source of the SQL). For the raw drivers
each is compiled once for SQLite; values are converted with the column types' own bind and
result processors (public ``TypeEngine`` API), so both drivers see and return the same data.
A plan receives a list of row tuples for :data:`ROWS`, the affected row count for
:data:`COUNT`, and None for :data:`MANY`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import Executable

T = TypeVar("T")
S = TypeVar("S")

ROWS, COUNT, MANY = "rows", "count", "many"
Params = dict[str, Any]


class Step(NamedTuple):
    """One statement of a plan: ``params`` is a dict, or a list of dicts for :data:`MANY`."""

    statement: Executable
    params: Params | list[Params]
    mode: str


Plan = Generator[Step, Any, T]


def fetch_all(statement: Executable, params: Params) -> Plan[list[Sequence[Any]]]:
    """Rows of a SELECT (``rows = yield from fetch_all(...)``)."""
    return (yield Step(statement, params, ROWS))  # type: ignore[no-any-return]


def execute(statement: Executable, params: Params) -> Plan[int]:
    """Run a DML statement once; the number of rows it changed."""
    return (yield Step(statement, params, COUNT))  # type: ignore[no-any-return]


def execute_many(statement: Executable, params: list[Params]) -> Plan[None]:
    """Run a DML statement once per parameter set."""
    yield Step(statement, params, MANY)


def run_plan(conn: Connection, plan: Plan[T]) -> T:
    """Run ``plan`` through SQLAlchemy Core on ``conn`` (in the caller's transaction)."""
    return drive(plan, lambda step: _core(conn, step))


def run_plan_sqlite(conn: Any, plan: Plan[T], *, begin: str | None = None) -> T:
    """Run ``plan`` on a raw ``sqlite3.Connection`` in autocommit mode.

    With ``begin`` (say ``"BEGIN IMMEDIATE"``) the plan runs in a transaction opened with it,
    committed at the end and rolled back if the plan fails; without, each statement stands
    alone (or in the caller's transaction).
    """
    if begin is None:
        return drive(plan, lambda step: run_step_sqlite(conn, step))
    conn.execute(begin)
    try:
        result = drive(plan, lambda step: run_step_sqlite(conn, step))
        conn.commit()
        return result
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def run_plans_sqlite(conn: Any, plans: Sequence[Plan[Any]], *, begin: str | None = None) -> list[tuple[bool, Any]]:
    """Run ``plans`` in ONE transaction on a raw ``sqlite3.Connection`` (a group commit), each in
    a savepoint of its own: a plan that fails is undone alone and the others still commit.

    The transaction is opened with ``begin`` (say ``"BEGIN IMMEDIATE"``); with None the caller
    has opened it. Returns ``(True, result)`` or ``(False, exception)`` per plan, in order. If the
    transaction itself fails (BEGIN, a savepoint that cannot be undone, COMMIT) nothing lands and
    that error is raised for all of them.
    """
    outcomes: list[tuple[bool, Any]] = []
    if begin is not None:
        conn.execute(begin)
    try:
        for plan in plans:
            conn.execute("SAVEPOINT fathom_plan")
            try:
                result = drive(plan, lambda step: run_step_sqlite(conn, step))
            except Exception as exc:
                conn.execute("ROLLBACK TO fathom_plan")
                conn.execute("RELEASE fathom_plan")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE fathom_plan")
                outcomes.append((True, result))
        conn.commit()
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return outcomes


async def run_plan_aiosqlite(conn: Any, plan: Plan[T], *, begin: str | None = None) -> T:
    """:func:`run_plan_sqlite` on an ``aiosqlite.Connection``, in one round trip to its thread.

    aiosqlite runs everything on a thread of its own, through a queue of functions that only
    its internal ``_execute`` reaches (SQLAlchemy's adapter uses the same internals). Where a
    version lacks it, the plan falls back to aiosqlite's public API: one round trip per
    statement. Either way the connection's requests run in order, so a cancelled caller
    cannot leave a half-sent plan interleaved with the next one.
    """
    submit = connection_thread(conn)
    if submit is not None:
        return await submit(lambda: run_plan_sqlite(conn._conn, plan, begin=begin))  # type: ignore[no-any-return]
    if begin is None:
        return await _run_statements_aiosqlite(conn, plan)
    await conn.execute(begin)
    try:
        result = await _run_statements_aiosqlite(conn, plan)
        await conn.commit()
        return result
    except BaseException:
        await conn.rollback()
        raise


def connection_thread(conn: Any) -> Callable[[Callable[[], Any]], Awaitable[Any]] | None:
    """aiosqlite's way to run a function on ``conn``'s thread, or None where it has none."""
    submit = getattr(conn, "_execute", None)
    return submit if callable(submit) else None


async def _run_statements_aiosqlite(conn: Any, plan: Plan[T]) -> T:
    """A plan through aiosqlite's public API: one thread round trip per statement."""
    result: Any = None
    try:
        while True:
            step = plan.send(result)
            compiled = _compile(step.statement)
            if step.mode == ROWS:
                rows = await conn.execute_fetchall(compiled.sql, compiled.bind(step.params))
                result = compiled.rows(rows)
            elif step.mode == COUNT:
                result = (await conn.execute(compiled.sql, compiled.bind(step.params))).rowcount
            else:
                await conn.executemany(compiled.sql, [compiled.bind(p) for p in step.params])
                result = None
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


def continue_plan(plan: Plan[T], value: Any) -> Plan[T]:
    """``plan`` on from ``value``, the answer to the statement it yielded last; closed at the end."""
    try:
        while True:
            try:
                step = plan.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = yield step
    finally:
        plan.close()


def drive(plan: Generator[S, Any, T], run: Callable[[S], Any]) -> T:
    """Hand each step ``plan`` yields to ``run`` and send back its result; ``plan``'s return value.

    Any generator of steps: the saver also runs its operations (steps: database calls) with it.
    """
    result: Any = None
    try:
        while True:
            result = run(plan.send(result))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


def _core(conn: Connection, step: Step) -> Any:
    result = conn.execute(step.statement, step.params)
    if step.mode == ROWS:
        return result.all()
    return result.rowcount if step.mode == COUNT else None


def run_step_sqlite(conn: Any, step: Step) -> Any:
    """Run one statement of a plan on a raw ``sqlite3.Connection``; its result for the plan."""
    compiled = _compile(step.statement)
    if step.mode == MANY:
        conn.executemany(compiled.sql, [compiled.bind(p) for p in step.params])
        return None
    cursor = conn.execute(compiled.sql, compiled.bind(step.params))
    try:
        return compiled.rows(cursor.fetchall()) if step.mode == ROWS else cursor.rowcount
    finally:
        cursor.close()


# ---- statements compiled for the raw SQLite drivers --------------------------------------------

_SQLITE = sqlite.dialect()  # pysqlite's: qmark parameters, the same SQL the engines would send

Processor = Callable[[Any], Any]


class _Compiled:
    """A statement's SQLite text, and how to turn named parameters into a positional tuple."""

    __slots__ = ("_binds", "_defaults", "_names", "_results", "sql")

    def __init__(self, statement: Executable) -> None:
        compiled = statement.compile(dialect=_SQLITE)
        if compiled.post_compile_params:  # an expanding IN list is rendered per call by Core
            raise ValueError("a statement with expanding parameters runs only through run_plan")
        self.sql = str(compiled)
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        binds = compiled.binds
        # literal values the statement carries itself (LIMIT 1, type = 'fathom.list', ...)
        self._defaults = {n: binds[n].effective_value for n in self._names if not binds[n].required}
        self._binds: dict[str, Processor] = {}
        for name in self._names:
            process = binds[name].type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
            if process is not None:
                self._binds[name] = process
        self._results: list[tuple[int, Processor]] = []
        for i, column in enumerate(getattr(statement, "selected_columns", ())):
            process = column.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None)
            if process is not None:
                self._results.append((i, process))

    def bind(self, params: Params) -> tuple[Any, ...]:
        values = []
        for name in self._names:
            value = params[name] if name in params else self._defaults[name]
            process = self._binds.get(name)
            values.append(process(value) if process is not None else value)
        return tuple(values)

    def rows(self, rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        if not self._results:
            return list(rows)
        converted = []
        for row in rows:
            values = list(row)
            for i, process in self._results:
                values[i] = process(values[i])
            converted.append(tuple(values))
        return converted


@lru_cache(maxsize=512)
def _compile(statement: Executable) -> _Compiled:
    # Keyed by the statement object: the plans' statements are module constants or cached per
    # dialect, so each is compiled once per process.
    return _Compiled(statement)

"""The MCP server of ``fathom mcp``: tools ``research``, ``resume``, ``list_runs``, ``get_run`` and
the resource ``fathom://runs/{run_id}/report``, over stdio or streamable HTTP.

Runs go through :mod:`fathom.app.runs` into the same run registry and checkpoints as the CLI's,
so ``fathom runs list`` shows them and ``fathom resume`` continues them (and the other way round).
While a run works, the graph's progress events become MCP progress notifications (sent when the
client gave a progress token). A cancelled request stops its run the way Ctrl-C stops the CLI:
the run is recorded ``interrupted`` and ``resume`` continues it from its last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from pydantic import BaseModel, Field

from fathom.app import runs as runner
from fathom.errors import FathomError, UnknownRunError, one_line
from fathom.protocols.prompts import mcp as words
from fathom.settings import Settings
from fathom.store import RUN_STATUSES, open_store

T = TypeVar("T")
REPORT_URI = "fathom://runs/{run_id}/report"
CANCEL_GRACE_S = 30.0  # how long a cancelled run may take to record itself interrupted
PREVIEW = 80


# ---- what the tools return (their JSON schemas are the tools' output schemas) -------------------


class Source(BaseModel):
    url: str
    title: str = ""


class RunResult(BaseModel):
    """A run: its answer and sources, and where its report is."""

    run_id: str
    question: str
    status: str
    answer: str | None = None
    sources: list[Source] = []
    rounds: int = 0
    error: str | None = None
    report_uri: str | None = None  # the report as an MCP resource, when the run wrote one
    report: str | None = None  # the report's Markdown, when asked for


class RunRow(BaseModel):
    run_id: str
    question: str
    status: str
    rounds: int
    answer: str | None
    created_at: str
    updated_at: str


class RunList(BaseModel):
    runs: list[RunRow]


# ---- the server -------------------------------------------------------------------------------------


def build_server(settings: Settings, *, flags: dict[str, Any] | None = None, config_file: Path | None = None) -> MCPServer:
    """The MCP server running research with ``settings`` (``flags`` and ``config_file``, as
    loaded by the CLI, also apply to resumed runs, over their recorded options)."""
    server: MCPServer = MCPServer("fathom", instructions=words.SERVER_INSTRUCTIONS, log_level="WARNING")
    overrides = dict(flags or {})

    @server.tool(name="research", description=words.RESEARCH_DESCRIPTION)
    async def research(
        question: Annotated[str, Field(description=words.QUESTION_ARG, min_length=1)],
        ctx: Context,
        deepresearch: Annotated[bool, Field(description=words.DEEPRESEARCH_ARG)] = False,
        include_report: Annotated[bool, Field(description=words.INCLUDE_REPORT_ARG)] = False,
        max_rounds: Annotated[int | None, Field(description=words.MAX_ROUNDS_ARG, ge=1, le=1000)] = None,
        run_id: Annotated[str | None, Field(description=words.NEW_RUN_ID_ARG, pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
    ) -> RunResult:
        if not question.strip():
            raise ToolError("the question is empty")
        run_settings = settings.model_copy(update={"max_rounds": max_rounds}) if max_rounds else settings
        new_id = run_id or runner.new_run_id()
        summary = await _with_progress(ctx, new_id, lambda on_event: runner.research(
            question.strip(), run_settings, run_id=new_id, deepresearch=deepresearch, on_event=on_event))
        return _result(summary, include_report)

    @server.tool(name="resume", description=words.RESUME_DESCRIPTION)
    async def resume(
        run_id: Annotated[str, Field(description=words.RUN_ID_ARG)],
        ctx: Context,
        include_report: Annotated[bool, Field(description=words.INCLUDE_REPORT_ARG)] = False,
    ) -> RunResult:
        summary = await _with_progress(ctx, run_id, lambda on_event: runner.resume(
            run_id, overrides, db_url=settings.db_url, config_file=config_file, on_event=on_event))
        return _result(summary, include_report)

    @server.tool(name="list_runs", description=words.LIST_RUNS_DESCRIPTION)
    async def list_runs(
        limit: Annotated[int, Field(description=words.LIMIT_ARG, ge=1, le=500)] = 20,
        status: Annotated[str | None, Field(description=words.STATUS_ARG)] = None,
    ) -> RunList:
        if status is not None and status not in RUN_STATUSES:
            raise ToolError(f"status must be one of {', '.join(RUN_STATUSES)}")
        async with _store(settings) as store:
            records = await store.runs.list(limit=limit if status is None else 10_000)
            rows = [(r, await runner.honest_status(store, r)) for r in records]
        return RunList(runs=[
            RunRow(run_id=r.run_id, question=r.question, status=st, rounds=r.rounds, answer=r.answer,
                   created_at=r.created_at.isoformat(), updated_at=r.updated_at.isoformat())
            for r, st in rows if status is None or st == status
        ][:limit])

    @server.tool(name="get_run", description=words.GET_RUN_DESCRIPTION)
    async def get_run(
        run_id: Annotated[str, Field(description=words.RUN_ID_ARG)],
        include_report: Annotated[bool, Field(description=words.INCLUDE_REPORT_ARG)] = False,
    ) -> RunResult:
        summary = await _summary(settings, run_id)
        return _result(summary, include_report)

    @server.resource(REPORT_URI, name="report", description=words.REPORT_RESOURCE_DESCRIPTION, mime_type="text/markdown")
    async def report(run_id: str) -> str:
        from fathom.app.report import report_document

        try:
            summary = await _summary(settings, run_id)
        except ToolError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        if not summary.get("report"):
            raise ResourceError(f"run {run_id} has no report (status {summary['status']}; "
                                "research with deepresearch writes one)")
        return report_document(summary, "md")

    return server


async def serve_stdio(server: MCPServer) -> None:
    """Serve MCP on this process's stdin and stdout until the client closes them."""
    await server.run_stdio_async()


async def serve_http(server: MCPServer, *, host: str, port: int, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve MCP over streamable HTTP at ``http://host:port/mcp`` until interrupted.

    Bound to ``host`` only; on a loopback host the SDK also refuses other Host/Origin headers
    (DNS rebinding protection).
    """
    import uvicorn

    app = server.streamable_http_app(host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    web = uvicorn.Server(config)
    if on_ready is not None:
        async def announce() -> None:
            while not web.started:
                await asyncio.sleep(0.05)
            on_ready(f"http://{host}:{port}/mcp")

        task = asyncio.create_task(announce())
    try:
        await web.serve()
    finally:
        if on_ready is not None:
            task.cancel()


# ---- helpers ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _store(settings: Settings) -> Any:
    try:
        async with open_store(settings.db_url) as store:
            yield store
    except FathomError as exc:
        raise ToolError(str(exc)) from None


async def _summary(settings: Settings, run_id: str) -> dict[str, Any]:
    """A run's summary from its latest state, with the registry's (honest) status."""
    from fathom.app.summary import run_summary

    async with _store(settings) as store:
        try:
            record = await runner.require_run(store, run_id)
        except UnknownRunError as exc:
            raise ToolError(str(exc)) from None
        status = await runner.honest_status(store, record)
        values = await runner.load_state(store, run_id)
    summary = run_summary(run_id, values)
    return {**summary, "question": summary["question"] or record.question, "status": status,
            "answer": summary["answer"] or record.answer, "error": summary["error"] or record.error}


def _result(summary: dict[str, Any], include_report: bool) -> RunResult:
    report = summary.get("report") or None
    return RunResult(
        run_id=summary["run_id"],
        question=summary.get("question") or "",
        status=summary["status"],
        answer=summary.get("answer"),
        sources=[Source(url=s["url"], title=s.get("title") or "") for s in summary.get("sources") or []],
        rounds=int(summary.get("rounds") or 0),
        error=summary.get("error"),
        report_uri=REPORT_URI.format(run_id=summary["run_id"]) if report else None,
        report=_report_markdown(summary) if report and include_report else None,
    )


def _report_markdown(summary: dict[str, Any]) -> str:
    from fathom.app.report import report_document

    return report_document(summary, "md")


async def _with_progress(
    ctx: Context, run_id: str, start: Callable[[runner.EventHandler], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Run ``start(on_event)`` with its progress events relayed to the client, and a cancelled
    request stopping the run resumable; expected failures become tool errors."""
    relay = ProgressRelay(ctx, run_id)
    pump = asyncio.create_task(relay.pump())
    relay.note(f"run {run_id}")
    try:
        return await _cancellable(start(relay.handle))
    except FathomError as exc:
        hint = f" (continue it with resume, run id {run_id})" if _resumable(exc) else ""
        raise ToolError(f"{one_line(exc, None) or type(exc).__name__}{hint}") from None
    finally:
        await relay.close(pump)


def _resumable(error: FathomError) -> bool:
    from fathom.errors import ModelError

    return isinstance(error, ModelError)


async def _cancellable(work: Awaitable[T]) -> T:
    """Await ``work`` in a task of its own; when this request is cancelled, cancel the work once
    and give it time to record its run interrupted before the cancellation goes on.

    (The SDK cancels a request through an anyio cancel scope, which would cancel every await of
    the run's own clean-up too; the work's task is outside that scope.)
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait([task], timeout=CANCEL_GRACE_S)
        raise


class ProgressRelay:
    """The graph's progress events as MCP progress notifications, in order, one short line each.

    ``handle`` is the run's (synchronous) event handler; ``pump`` sends what it queued.
    """

    def __init__(self, ctx: Context, run_id: str) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.sent = 0
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()

    def handle(self, event: dict[str, Any]) -> None:
        line = describe(event)
        if line:
            self._queue.put_nowait(line)

    def note(self, line: str) -> None:
        self._queue.put_nowait(line)

    async def pump(self) -> None:
        while (line := await self._queue.get()) is not None:
            self.sent += 1
            with contextlib.suppress(Exception):  # a client gone away must not fail the run
                await self.ctx.report_progress(self.sent, None, line)

    async def close(self, pump: asyncio.Task[None]) -> None:
        """Send what is queued (unless the request is being cancelled), then stop the pump."""
        self._queue.put_nowait(None)
        with anyio.CancelScope(shield=True):
            await asyncio.wait([pump], timeout=5.0)
        pump.cancel()


def describe(event: dict[str, Any]) -> str | None:
    """One line of progress for a person watching the run (None: not worth a notification)."""
    kind = event.get("event")
    if kind == "turn":
        return f"round {event.get('round')}" + (" (answer forced)" if event.get("forced") else "")
    if kind == "tool_start":
        args = event.get("args") or {}
        target = args.get("query") or args.get("url") or ""
        return f"{event.get('name')} {one_line(target, PREVIEW)}".rstrip()
    if kind == "tool_end" and not event.get("ok"):
        return f"{event.get('name')} failed"
    if kind == "model" and event.get("answer") is not None:
        return f"answer: {one_line(event['answer'], PREVIEW)}"
    if kind == "verify":
        return "answer checked" if event.get("accepted") else "answer sent back for more research"
    if kind == "resume":
        return f"resuming run {event.get('run_id')}"
    if kind == "model_wait":
        return f"still waiting for the {event.get('model') or 'model'} at {event.get('url')} ({event.get('waited_s', 0):g} s)"
    if kind == "fold":
        return f"folded {event.get('results')} older tool results into digests"
    return {"plan_start": "planning the report", "write_start": "writing the report",
            "write_continue": "continuing the report", "write": "report written"}.get(str(kind))

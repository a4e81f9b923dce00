"""Run a benchmark: every question of a dataset as one durable research run, judged, resumable.

An eval is named. Its items live in the run database (:mod:`fathom.store.eval`) and are worked
on by leases: this process claims items, runs each as a research run recorded in the run
registry (run id derived from the eval and item, so a re-run finds it), renews the leases of the
items in flight, asks the judge, and records the verdict with the run's metrics. Any number of
processes, on any number of machines sharing one PostgreSQL or MariaDB database, can run the
same eval at once; each item is answered once.

Re-running an eval skips done items and resumes interrupted ones from their last checkpoint
(finished tool calls are not repeated); failed items are retried only with ``retry_failed``.
Ctrl-C (or cancelling :func:`run_eval`) hands this process's claims back at once; a process
that dies outright leaves its items to be taken over when their leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fathom.aio import loop_is_own
from fathom.errors import ConfigError, ModelError, StoreError, ToolError, one_line
from fathom.settings import Settings
from fathom.startup import collector_paused
from fathom.store import open_store
from fathom.store.eval import ClaimedItem, EvalStore

if TYPE_CHECKING:
    from fathom.eval.judges import Judge
    from fathom.ports import Services
    from fathom.store import Store

EventHandler = Callable[[dict[str, Any]], None]

RUN_ID_CHARS = 255  # the run registry's run_id column
_READABLE_ID_CHARS = 120


def eval_run_id(name: str, item_id: str) -> str:
    """The run id of an item's research run: ``EVAL:ITEM`` while short, otherwise a digest of
    both after a readable prefix. The same eval and item always give the same id."""
    readable = f"{name}:{item_id}"
    if len(readable) <= _READABLE_ID_CHARS:
        return readable
    digest = hashlib.sha256(f"{name}\0{item_id}".encode()).hexdigest()[:32]
    return f"{readable[: _READABLE_ID_CHARS - 33]}~{digest}"


def worker_id() -> str:
    """This process's lease owner name: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


async def release_dead_local_claims(evals: EvalStore, name: str) -> int:
    """Hand back at once the claims of eval ``name`` held by processes of this host that are gone
    (a killed ``fathom eval run``): the same command again resumes them without waiting out their
    leases. Claims of other hosts, and of live pids, wait for their leases. Returns how many."""
    host = socket.gethostname()
    released = 0
    for owner in {r.lease_owner for r in await evals.items(name, "claimed") if r.lease_owner}:
        parts = owner.rsplit(":", 2)  # worker_id(): host:pid:random
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid != os.getpid() and not _pid_alive(pid):
            released += await evals.release(owner, name)
    return released


def failure_cause(exc: BaseException) -> str:
    """What a failed run's exception blames: ``model``, ``tools``, ``store``, ``config`` or ``error``."""
    if isinstance(exc, ModelError):
        return "model"
    if isinstance(exc, ToolError):
        return "tools"
    if isinstance(exc, StoreError):
        return "store"
    if isinstance(exc, ConfigError):
        return "config"
    return "error"


async def run_eval(
    name: str,
    dataset_name: str,
    items: Iterable[Any],
    settings: Settings,
    *,
    judge: Judge,
    concurrency: int = 32,
    lease_s: float = 120,
    retry_failed: bool = False,
    on_event: EventHandler | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run eval ``name`` over ``items`` (``id``, ``question``, ``answer``, ``extra``) of
    ``dataset_name`` until no item is left to claim; return its summary (counts by status and
    verdict).

    At most ``concurrency`` runs are in flight; all of them share one set of services (model
    clients, tools, caches). Items held by another live process are left to it: this call waits
    for them only while their leases could still expire (a dead process's items are taken over).

    Raises:
        ConfigError: ``name`` is an eval of another dataset, or a bad setting.
        StoreError: the database cannot be used.
        ModelUnavailableError: the search model server is unreachable; the eval stopped with
            every item resumable (run it again once the server is up).
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
    if lease_s <= 0:
        raise ConfigError(f"lease_s must be positive, got {lease_s}")
    with collector_paused(freeze=loop_is_own()):
        from fathom.app.services import build_services, prompt_digests

    emit = on_event or (lambda event: None)
    owner = worker_id()
    async with open_store(settings.db_url) as store:
        evals = EvalStore(store.db)
        eval_options = {"judge": judge.name, **dict(options or {})}
        await evals.create_or_open(name, dataset_name, items, eval_options)
        if retry_failed:
            await evals.retry_failed(name)
        await release_dead_local_claims(evals, name)
        run_options = {**settings.public_dict(), "prompts": prompt_digests(settings), "eval": name}
        services = build_services(settings, database=store.db)
        progress = Progress.from_summary(await eval_summary(evals, name), time.monotonic())
        worker = _Worker(store, evals, services, settings, judge, name, owner, lease_s, run_options, emit, progress)
        emit({"event": "eval_start", "eval": name, "dataset": dataset_name, "owner": owner, **progress.figures()})
        try:
            await worker.work(concurrency)
        finally:
            try:
                await asyncio.shield(evals.release(owner, name))  # anything still held goes back
            finally:
                await services.aclose()
        summary = await eval_summary(evals, name)
        emit({"event": "eval_end", **summary})
        return summary


async def eval_summary(evals: EvalStore, name: str) -> dict[str, Any]:
    """Counts of eval ``name``'s items by status and by verdict."""
    statuses = {s: 0 for s in ("pending", "claimed", "done", "failed")}
    verdicts = {v: 0 for v in ("correct", "incorrect", "not_attempted", "judge_error")}
    for (status, verdict), count in (await evals.tally(name)).items():
        statuses[status] = statuses.get(status, 0) + count
        if status == "done" and verdict is not None:
            verdicts[verdict] = verdicts.get(verdict, 0) + count
    return {"eval": name, "total": sum(statuses.values()), **statuses, "verdicts": verdicts}


@dataclass
class Progress:
    """What one process knows of an eval's progress: counts (those of other processes only as of
    this one's start), accuracy so far, this process's pace and the time left at that pace."""

    total: int
    done: int
    failed: int
    correct: int
    judged: int  # done items with a verdict other than judge_error
    started: float  # time.monotonic() of this process's start
    finished_here: int = 0
    in_flight: int = 0

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], now: float) -> Progress:
        verdicts = summary["verdicts"]
        judged = summary["done"] - verdicts.get("judge_error", 0)
        return cls(summary["total"], summary["done"], summary["failed"], verdicts.get("correct", 0), judged, now)

    def record(self, status: str, verdict: str | None = None) -> None:
        """Count an item this process finished (``done`` with ``verdict``, or ``failed``)."""
        self.finished_here += 1
        if status == "failed":
            self.failed += 1
            return
        self.done += 1
        if verdict != "judge_error":
            self.judged += 1
            self.correct += verdict == "correct"

    def figures(self, now: float | None = None) -> dict[str, Any]:
        """The progress event's fields: counts, ``accuracy`` (correct ÷ judged so far, None
        before any), ``per_minute`` (this process's pace) and ``eta_s`` (None until known)."""
        minutes = ((time.monotonic() if now is None else now) - self.started) / 60
        per_minute = self.finished_here / minutes if minutes > 0 and self.finished_here else None
        left = max(self.total - self.done - self.failed, 0)
        return {
            "total": self.total, "done": self.done, "failed": self.failed, "in_flight": self.in_flight,
            "correct": self.correct, "accuracy": self.correct / self.judged if self.judged else None,
            "per_minute": round(per_minute, 2) if per_minute else None,
            "eta_s": round(left / per_minute * 60, 1) if per_minute else (0.0 if not left else None),
        }


class _Worker:
    """The claim loop of one process, its in-flight runs and the lease renewer."""

    def __init__(
        self,
        store: Store,
        evals: EvalStore,
        services: Services,
        settings: Settings,
        judge: Judge,
        name: str,
        owner: str,
        lease_s: float,
        run_options: dict[str, Any],
        emit: EventHandler,
        progress: Progress,
    ) -> None:
        self.store, self.evals, self.services, self.settings = store, evals, services, settings
        self.judge, self.name, self.owner, self.lease_s = judge, name, owner, lease_s
        self.run_options, self.emit, self.progress = run_options, emit, progress
        self.in_flight: dict[str, ClaimedItem] = {}

    async def work(self, concurrency: int) -> None:
        tasks: set[asyncio.Task[None]] = set()
        renewer = asyncio.create_task(self._renew_forever())
        try:
            while True:
                free = concurrency - len(tasks)
                claimed = await self.evals.claim(self.name, self.owner, self.lease_s, free) if free else []
                for item in claimed:
                    self.in_flight[item.id] = item
                    tasks.add(asyncio.create_task(self._run_item(item), name=f"eval item {item.id}"))
                if claimed:
                    self._progress()
                if tasks and (not claimed or len(tasks) >= concurrency):
                    finished, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for task in finished:
                        task.result()  # a run's own failure is recorded; this raises only what stops the eval
                elif not claimed and not tasks:
                    wait_s = await self._others_hold()
                    if wait_s is None:
                        return
                    await asyncio.sleep(wait_s)
        finally:
            renewer.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(renewer, *tasks, return_exceptions=True)

    async def _others_hold(self) -> float | None:
        """None when no item is held by anyone; else how long to wait before claiming again
        (until the earliest lease could expire, at most a quarter lease)."""
        held = [r for r in await self.evals.items(self.name, "claimed") if r.lease_owner != self.owner]
        if not held:
            return None
        earliest = min(r.lease_until or 0.0 for r in held)
        return min(max(earliest - time.time(), 0.0) + 0.05, self.lease_s / 4)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            ids = list(self.in_flight)
            if ids:
                with contextlib.suppress(StoreError):  # the next renewal (or the finish) tells
                    kept = set(await self.evals.renew(self.name, self.owner, ids, self.lease_s))
                    for lost in set(ids) - kept:
                        self.emit({"event": "eval_lease_lost", "eval": self.name, "item": lost})

    async def _run_item(self, item: ClaimedItem) -> None:
        from fathom.models.base import ModelUnavailableError

        run_id = eval_run_id(self.name, item.id)
        started = time.monotonic()
        try:
            try:
                summary = await self._research(item, run_id)
            except ModelUnavailableError:
                raise  # the server is down: stop the eval, leaving the item resumable
            except Exception as exc:
                metrics = {"wall_s": round(time.monotonic() - started, 3), "run_status": "failed"}
                error = one_line(exc) or type(exc).__name__
                if await self.evals.fail(self.name, item.id, self.owner, cause=failure_cause(exc),
                                         error=error, metrics=metrics, run_id=run_id):
                    self.progress.record("failed")
                self.in_flight.pop(item.id, None)
                self._progress(item.id, "failed", error=error)
                return
            metrics = _metrics(summary, time.monotonic() - started)
            judgement = await self._judge(item, summary.get("answer"))
            if await self.evals.finish(
                self.name, item.id, self.owner, answer=summary.get("answer"), verdict=judgement["verdict"],
                reason=judgement["reason"], judge=judgement["judge"], metrics=metrics, run_id=run_id,
            ):
                self.progress.record("done", judgement["verdict"])
            self.in_flight.pop(item.id, None)
            self._progress(item.id, "done", verdict=judgement["verdict"])
        finally:
            self.in_flight.pop(item.id, None)

    async def _judge(self, item: ClaimedItem, answer: str | None) -> dict[str, str]:
        try:
            judgement = await self.judge(item.question, item.gold, answer)
        except Exception as exc:  # a judge that breaks is the judge's error, not the run's
            return {"verdict": "judge_error", "reason": one_line(exc) or type(exc).__name__, "judge": self.judge.name}
        return {"verdict": judgement.verdict, "reason": judgement.reason, "judge": judgement.judge or self.judge.name}

    async def _research(self, item: ClaimedItem, run_id: str) -> dict[str, Any]:
        """Run the item's research, or continue it from its last checkpoint."""
        from fathom.app.runs import execute, final_status, is_finished, run_config, run_endpoints, summary_of
        from fathom.app.services import research_graph
        from fathom.store.runs import new_run

        inputs = {"question": item.question, "deepresearch": False, "review_plan": False,
                  "language": self.settings.language}
        payload: dict[str, Any] | None = inputs
        options = {**self.run_options, "inputs": inputs, "eval_item": item.id}
        run = new_run(run_id, item.question, options=options, endpoints=run_endpoints(self.settings))
        # An item's first claim has no run yet: create it (noted on the item) without looking.
        record = await self._create_run(item, run) if item.attempts == 1 else None
        if record is None:
            record = await self.store.runs.get(run_id)
            if record is None:
                record = await self.evals.create_run(self.name, item.id, self.owner, run)
            else:
                await self.evals.set_run(self.name, item.id, self.owner, run_id)
                snapshot = await research_graph(checkpointer=self.store.saver).aget_state(run_config(run_id))
                if is_finished(snapshot):  # finished, but its process died before the verdict
                    summary = summary_of(run_id, snapshot)
                    return {**summary, "status": final_status(summary)}
                if snapshot.created_at is not None:
                    payload = None  # continue from the last checkpoint
        return await execute(self.store, record, self.settings, payload=payload, services=self.services)

    async def _create_run(self, item: ClaimedItem, run: dict[str, Any]) -> Any:
        """The new run's record, or None when a run with this id exists already."""
        from fathom.store import RunExistsError

        try:
            return await self.evals.create_run(self.name, item.id, self.owner, run)
        except RunExistsError:
            return None

    def _progress(self, item: str | None = None, status: str | None = None, **extra: Any) -> None:
        self.progress.in_flight = len(self.in_flight)
        event: dict[str, Any] = {"event": "eval_progress", "eval": self.name, **self.progress.figures()}
        if item is not None:
            event.update(item=item, status=status, **extra)
        self.emit(event)


def _metrics(summary: dict[str, Any], wall_s: float) -> dict[str, Any]:
    usage = summary.get("usage") or {}
    metrics: dict[str, Any] = {
        "rounds": int(summary.get("rounds") or 0),
        "tool_calls": len(summary.get("tool_calls") or []),
        **{k: int(usage.get(k, 0)) for k in ("prompt_tokens", "completion_tokens", "cached_tokens")},
        "wall_s": round(wall_s, 3),
        "run_status": summary.get("status"),
    }
    if summary.get("error"):
        # unanswered: the budget ran out and the forced final turns brought no answer
        metrics["failure"] = "budget" if summary.get("status") == "unanswered" else "run"
        metrics["error"] = one_line(summary["error"])
    return metrics


__all__ = ["Progress", "eval_run_id", "release_dead_local_claims", "eval_summary", "failure_cause", "run_eval", "worker_id"]

"""Start, watch and stop the servers of ``fathom serve``.

A server is one SGLang worker on the model's port, or with replicas, N workers on free loopback
ports behind SGLang's own router (``smg``, or the older ``sglang-router``) on that port.
Every process runs under :mod:`fathom.serving.supervise`, in its own session, and is recorded
(PID + start time) in the state file as soon as it starts, so ``serve stop`` finds it even if
``serve start`` was killed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fathom.errors import ConfigError, ModelError
from fathom.serving import procs, state
from fathom.serving.spec import LOOPBACK, ServerSpec
from fathom.serving.supervise import KEY_VAR

INSTALL_HINT = (
    "pip install 'fathom-deepresearch[serve]' in a GPU environment, "
    "or name the Python that has sglang with --python (env FATHOM_SGLANG_PYTHON)"
)
POLL_S = 0.25
STOP_GRACE_S = procs.GRACE_S
METRICS = ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:cache_hit_rate")

Say = Callable[[str], None]


# ---- checks before launching ------------------------------------------------------------------


def check_sglang(python: str) -> None:
    """ConfigError with the install hint when ``python`` cannot import sglang."""
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('sglang') is None)"
    try:
        found = subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        raise ConfigError(f"cannot run the Python {python}: {INSTALL_HINT}") from None
    if not found:
        raise ConfigError(f"sglang is not installed in {python}: {INSTALL_HINT}")


def router_command(python: str) -> list[str]:
    """How to start SGLang's router: ``smg launch`` (beside ``python`` or on PATH), else the older
    ``python -m sglang_router.launch_router``. ConfigError when neither is installed."""
    beside = Path(python).parent / "smg"
    smg = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("smg")
    if smg:
        return [smg, "launch"]
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('sglang_router') is None)"
    if subprocess.run([python, "-c", code], capture_output=True).returncode == 0:
        return [python, "-m", "sglang_router.launch_router"]
    raise ConfigError(f"--replicas needs SGLang's router: pip install smg (or sglang-router) into {python}")


def check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise ConfigError(f"port {port} on {host} is already in use (see 'fathom serve status')") from None


def free_port(avoid: set[int]) -> int:
    """A free loopback port not in ``avoid`` (which it joins): the OS may hand out a port again
    as soon as it is closed, and the server's own port must stay for the router."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            avoid.add(port)
            return port


# ---- state helpers -----------------------------------------------------------------------------


def live_processes(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in record.get("processes", []) if procs.is_ours(p["pid"], p.get("start_time"))]


def log_tail(path: str | Path, lines: int = 5, limit: int = 400) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = " | ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])
    return (tail[-limit:] if len(tail) > limit else tail) or "(empty log)"


# ---- start -------------------------------------------------------------------------------------


class _Launch:
    """The processes of one server being started (stopped again if it fails)."""

    def __init__(self, spec: ServerSpec, api_key: str | None) -> None:
        self.spec = spec
        self.api_key = api_key
        self.record: dict[str, Any] = {
            "name": spec.name, "url": spec.url, "model": spec.served_name, "model_path": spec.model_path,
            "replicas": spec.replicas, "context_length": spec.context_length, "processes": [],
        }
        self.popens: list[subprocess.Popen[bytes]] = []

    def spawn(self, role: str, argv: list[str], *, url: str, gpus: tuple[str, ...] | None, key: bool) -> None:
        logs = state.log_dir()
        logs.mkdir(parents=True, exist_ok=True)
        index = len(self.record["processes"])
        label = self.spec.name if self.spec.replicas == 1 else (
            f"{self.spec.name}-router" if role == "router" else f"{self.spec.name}-{index}")
        log = logs / f"{label}.log"
        log.write_bytes(b"")
        env = {k: v for k, v in os.environ.items() if k != KEY_VAR}
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        if key and self.api_key:
            env[KEY_VAR] = self.api_key
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "fathom.serving.supervise", str(log), "--", *argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # its own process group: stop reaches SGLang's children
            )
        self.popens.append(popen)
        self.record["processes"].append({
            "label": label, "role": role, "pid": popen.pid, "start_time": procs.start_time(popen.pid),
            "url": url, "log": str(log), "argv": argv, "gpus": list(gpus) if gpus is not None else None,
        })
        state.update(self.spec.name, self.record)

    def wait_ready(self, index: int, path: str, deadline: float, *, workers: int = 0) -> None:
        """Poll the process's ``path`` until it answers 200 (and, for a router, lists ``workers``)."""
        import httpx

        proc, popen = self.record["processes"][index], self.popens[index]
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with httpx.Client(timeout=5.0, trust_env=False, headers=headers) as http:
            while True:
                if (rc := popen.poll()) is not None:
                    raise self.failure(proc, f"exited with status {rc}")
                if time.monotonic() > deadline:
                    raise self.failure(proc, "was not ready in time (see --timeout)")
                try:
                    if http.get(proc["url"] + path).status_code == 200:
                        listed = _router_workers(http, proc["url"]) if workers else None
                        if listed is None or listed >= workers:
                            return
                except httpx.HTTPError:
                    pass
                time.sleep(POLL_S)

    def failure(self, proc: dict[str, Any], what: str) -> ModelError:
        self.stop()
        return ModelError(
            f"{self.spec.name} server ({proc['label']}) {what}; log {proc['log']}: {log_tail(proc['log'])}")

    def stop(self) -> None:
        for proc in reversed(self.record["processes"]):
            procs.stop_group(proc["pid"], proc["start_time"], grace_s=5.0)
        state.update(self.spec.name, None)


def _router_workers(http: Any, url: str) -> int | None:
    """How many workers the router lists at ``/workers`` (None when it has no such route)."""
    try:
        resp = http.get(url + "/workers")
        if resp.status_code != 200:
            return None
        data = resp.json()
    except Exception:
        return None
    if isinstance(data, dict):
        data = data.get("workers", data.get("urls"))
    return len(data) if isinstance(data, list) else None


def start(spec: ServerSpec, *, python: str, api_key: str | None, timeout_s: float, say: Say) -> dict[str, Any]:
    """Launch ``spec`` and wait until it serves; return its state record.

    Raises ConfigError (already running, port taken, sglang or the router missing) before
    anything starts, and ModelError (one line, with the log's tail) when it fails to come up,
    after stopping what it started.
    """
    previous = state.load().get(spec.name)
    if previous and live_processes(previous):
        raise ConfigError(f"{spec.name} is already running at {previous['url']} (stop it with 'fathom serve stop {spec.name}')")
    check_port_free(spec.host, spec.port)
    check_sglang(python)
    router = router_command(python) if spec.replicas > 1 else None
    launch = _Launch(spec, api_key)
    deadline = time.monotonic() + timeout_s
    taken = {spec.port}
    try:
        if router is None:
            launch.spawn("worker", spec.worker_argv(python, host=spec.host, port=spec.port),
                         url=spec.url, gpus=spec.gpus, key=True)
        else:
            for gpus in spec.worker_gpus():
                port = free_port(taken)
                launch.spawn("worker", spec.worker_argv(python, host=LOOPBACK, port=port),
                             url=f"http://{LOOPBACK}:{port}", gpus=gpus, key=True)
        say(f"{spec.name}: starting {spec.model_path} ({spec.replicas} worker(s)); logs in {state.log_dir()}")
        for index in range(len(launch.popens)):
            launch.wait_ready(index, "/health_generate", deadline)
        if router is not None:
            workers = [p["url"] for p in launch.record["processes"]]
            argv = [*router, "--worker-urls", *workers, "--policy", "cache_aware",
                    "--host", spec.host, "--port", str(spec.port),
                    "--prometheus-host", LOOPBACK, "--prometheus-port", str(free_port(taken))]
            launch.spawn("router", argv, url=spec.url, gpus=None, key=False)
            launch.wait_ready(len(launch.popens) - 1, "/health", deadline, workers=spec.replicas)
    except BaseException:
        launch.stop()
        raise
    say(f"{spec.name}: ready at {spec.url} (model {spec.served_name})")
    return launch.record


# ---- status ------------------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, list[float]]:
    """The samples of :data:`METRICS` in Prometheus text (one value per label set)."""
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in METRICS:
            try:
                found.setdefault(name, []).append(float(line.rsplit(" ", 1)[1]))
            except (IndexError, ValueError):
                continue
    return found


def server_status(record: dict[str, Any], api_key: str | None) -> dict[str, Any]:
    import httpx

    processes = record.get("processes", [])
    alive = live_processes(record)
    router = next((p for p in processes if p["role"] == "router"), None)
    workers = [p for p in processes if p["role"] == "worker"]
    out: dict[str, Any] = {
        "name": record["name"], "url": record["url"], "model": record["model"],
        "replicas": record.get("replicas", len(workers)), "processes": len(alive), "health": "down",
        "running": None, "queued": None, "cache_hit_rate": None,
    }
    if len(alive) < len(processes):
        out["health"] = "exited" if not alive else "degraded"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    samples: dict[str, list[float]] = {}
    with httpx.Client(timeout=5.0, trust_env=False, headers=headers) as http:
        try:
            resp = http.get(record["url"] + ("/health" if router else "/health_generate"))
            if out["health"] != "exited":
                out["health"] = "ok" if resp.status_code == 200 and len(alive) == len(processes) else (
                    out["health"] if resp.status_code == 200 else f"unhealthy (HTTP {resp.status_code})")
        except httpx.HTTPError:
            pass
        for worker in workers:
            try:
                resp = http.get(worker["url"] + "/metrics")
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                for name, values in parse_metrics(resp.text).items():
                    samples.setdefault(name, []).extend(values)
    if "sglang:num_running_reqs" in samples:
        out["running"] = int(sum(samples["sglang:num_running_reqs"]))
    if "sglang:num_queue_reqs" in samples:
        out["queued"] = int(sum(samples["sglang:num_queue_reqs"]))
    if rates := samples.get("sglang:cache_hit_rate"):
        out["cache_hit_rate"] = sum(rates) / len(rates)
    return out


def status(api_key: str | None) -> list[dict[str, Any]]:
    return [server_status(record, api_key) for _, record in sorted(state.load().items())]


# ---- stop --------------------------------------------------------------------------------------


def stop(names: list[str] | None, *, grace_s: float = STOP_GRACE_S, say: Say) -> int:
    """Stop the named servers (all when None): only processes whose PID *and* start time match
    the record. Returns how many processes were signalled."""
    servers = state.load()
    chosen = list(servers) if names is None else names
    signalled = 0
    for name in chosen:
        record = servers.get(name)
        if record is None:
            say(f"{name}: not started by 'fathom serve'")
            continue
        for proc in sorted(record.get("processes", []), key=lambda p: p["role"] != "router"):
            if procs.stop_group(proc["pid"], proc.get("start_time"), grace_s=grace_s):
                signalled += 1
                say(f"{name}: stopped {proc['label']} (pid {proc['pid']})")
            else:
                say(f"{name}: {proc['label']} (pid {proc['pid']}) had already exited")
        state.update(name, None)
    return signalled


def log_files(name: str) -> list[Path]:
    """The log files of server (or process label) ``name``."""
    servers = state.load()
    if name in servers:
        return [Path(p["log"]) for p in servers[name].get("processes", [])]
    folder = state.log_dir()
    exact = folder / f"{name}.log"
    if exact.exists():
        return [exact]
    return sorted(folder.glob(f"{name}-*.log"))

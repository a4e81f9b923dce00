"""`fathom serve` as a user runs it, against a fake `sglang` (and fake router) started as real
processes on 127.0.0.1. Every test stops what it started, by PID, even when it fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fathom.serving import procs
from tests.conftest import cli_env
from tests.fakes.serve_fakes import write_smg_script
from tests.fakes.server import free_port

ROOT = Path(__file__).resolve().parents[2]
FAKE_PATH = ROOT / "tests" / "fakes" / "serve_path"
KEY = "sk-serve-SECRET-4242"


class Serve:
    """Run `fathom serve …` in a subprocess with the fakes on PYTHONPATH; knows what was launched."""

    def __init__(self, tmp: Path, db_url: str) -> None:
        self.tmp = tmp
        self.state_home = tmp / "xdg-state"
        self.record = tmp / "launched.jsonl"
        self.bin = tmp / "bin"
        self.bin.mkdir()
        write_smg_script(self.bin)
        self.db_url = db_url
        self.env = {
            "XDG_STATE_HOME": str(self.state_home),
            "PYTHONPATH": os.pathsep.join([str(FAKE_PATH), str(ROOT)]),
            "FAKE_SGLANG_RECORD": str(self.record),
            "PATH": os.pathsep.join([str(self.bin), os.environ.get("PATH", "")]),
        }

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fathom", "serve", *args], env=cli_env(self.db_url, {**self.env, **(env or {})}),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )

    @property
    def state_file(self) -> Path:
        return self.state_home / "fathom" / "serve" / "servers.json"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())["servers"] if self.state_file.exists() else {}

    def launched(self, kind: str = "sglang") -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        entries = [json.loads(line) for line in self.record.read_text().splitlines()]
        return [e for e in entries if e["kind"] == kind]

    def cleanup(self) -> None:
        """Stop every process a test may have left: the recorded groups, then the fakes themselves."""
        for record in self.state().values():
            for proc in record["processes"]:
                procs.stop_group(proc["pid"], proc["start_time"], grace_s=2)
        for entry in self.launched("sglang") + self.launched("router"):
            if procs.is_ours(entry["pid"], entry["start_time"]):
                os.kill(entry["pid"], signal.SIGKILL)


@pytest.fixture
def serve(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Serve]:
    runner = Serve(tmp_path, db_url)
    monkeypatch.setenv("XDG_STATE_HOME", str(runner.state_home))
    try:
        yield runner
    finally:
        runner.cleanup()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """An unrelated process that `serve stop` must leave alone."""
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def get(url: str, **kw: Any) -> httpx.Response:
    assert url.startswith("http://127.0.0.1:")
    return httpx.get(url, trust_env=False, timeout=10, **kw)


def all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_start_status_logs_stop(serve: Serve, sleeper: subprocess.Popen) -> None:
    port = free_port()
    started = serve("start", "search", "--port", str(port), "--", "--reasoning-parser", "qwen3",
                    env={"FATHOM_MODEL_API_KEY": KEY})
    assert started.returncode == 0, started.stderr
    assert f"ready at http://127.0.0.1:{port}" in started.stderr

    [launch] = serve.launched()
    argv = launch["argv"]
    assert flag(argv, "--port") == str(port) and flag(argv, "--host") == "127.0.0.1"
    assert flag(argv, "--served-model-name") == "Fathom-Search-4B"
    assert flag(argv, "--model-path") == "FractalAIResearch/Fathom-Search-4B"
    assert flag(argv, "--context-length") == "40960"
    assert "--enable-metrics" in argv and "--enable-cache-report" in argv
    assert "--disable-radix-cache" not in argv and "--disable-cuda-graph" not in argv
    assert flag(argv, "--reasoning-parser") == "qwen3"  # extra arguments after -- pass through
    assert flag(argv, "--api-key") == KEY
    assert get(f"http://127.0.0.1:{port}/health_generate").status_code == 200

    table = serve("status", env={"FATHOM_MODEL_API_KEY": KEY})
    assert table.returncode == 0, table.stderr
    [row] = [line.split() for line in table.stdout.splitlines() if line.startswith("search")]
    assert row == ["search", f"http://127.0.0.1:{port}", "Fathom-Search-4B", "ok", "2", "1", "25.0%", "1"]
    as_json = serve("status", "--json", env={"FATHOM_MODEL_API_KEY": KEY})
    [status] = json.loads(as_json.stdout)
    assert status["health"] == "ok" and status["running"] == 2 and status["queued"] == 1
    assert status["cache_hit_rate"] == 0.25 and status["replicas"] == 1

    logs = serve("logs", "search")
    assert logs.returncode == 0 and "fired up" in logs.stdout
    # the key went to SGLang, and nowhere else: not the state, the logs or any output
    assert "***" in logs.stdout
    for text in (all_text(serve.state_home), logs.stdout, table.stdout, as_json.stdout, started.stderr):
        assert KEY not in text

    [proc] = serve.state()["search"]["processes"]
    stopped = serve("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not procs.is_ours(proc["pid"], proc["start_time"])
    assert not procs.is_ours(launch["pid"], launch["start_time"])
    assert sleeper.poll() is None  # not ours: untouched
    assert serve.state() == {}
    assert "no servers" in serve("status").stdout


def test_start_all_uses_the_configured_ports_and_separate_gpus(serve: Serve) -> None:
    ports = {name: free_port() for name in ("search", "synth", "query")}
    env = {
        "FATHOM_SEARCH_MODEL_URL": f"http://127.0.0.1:{ports['search']}",
        "FATHOM_SYNTH_MODEL_URL": f"http://127.0.0.1:{ports['synth']}",
        "FATHOM_QUERY_LLM": f"http://127.0.0.1:{ports['query']}/v1",
    }
    started = serve("start", "all", "--model-path", "query=Qwen/Qwen3-4B", env=env)
    assert started.returncode == 0, started.stderr
    launched = {flag(e["argv"], "--served-model-name"): e for e in serve.launched()}
    assert set(launched) == {"Fathom-Search-4B", "Fathom-Synthesizer-4B", "Qwen3-4B"}
    synth = launched["Fathom-Synthesizer-4B"]["argv"]
    assert flag(synth, "--port") == str(ports["synth"])
    scaling = json.loads(flag(synth, "--json-model-override-args"))["rope_scaling"]
    assert scaling == {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 40960}
    assert scaling["factor"] * scaling["original_max_position_embeddings"] == int(flag(synth, "--context-length"))
    assert flag(launched["Qwen3-4B"]["argv"], "--port") == str(ports["query"])
    assert flag(launched["Qwen3-4B"]["argv"], "--context-length") == "32768"
    assert flag(launched["Fathom-Search-4B"]["argv"], "--port") == str(ports["search"])
    gpus = {name: e["cuda_visible_devices"] for name, e in launched.items()}
    assert gpus == {"Fathom-Search-4B": "0", "Fathom-Synthesizer-4B": "1", "Qwen3-4B": "2"}
    assert "--api-key" not in synth  # no FATHOM_MODEL_API_KEY, no key
    assert serve("stop").returncode == 0
    assert not any(procs.is_ours(e["pid"], e["start_time"]) for e in serve.launched())


def test_start_all_on_a_one_gpu_host_shares_the_gpu(serve: Serve) -> None:
    """`fathom serve start all` works on a single GPU: both servers on it, its memory split."""
    env = {"FATHOM_SEARCH_MODEL_URL": f"http://127.0.0.1:{free_port()}",
           "FATHOM_SYNTH_MODEL_URL": f"http://127.0.0.1:{free_port()}", "CUDA_VISIBLE_DEVICES": "0"}
    started = serve("start", "all", env=env)
    assert started.returncode == 0, started.stderr
    launched = {flag(e["argv"], "--served-model-name"): e for e in serve.launched()}
    assert {e["cuda_visible_devices"] for e in launched.values()} == {"0"}
    assert {flag(e["argv"], "--mem-fraction-static") for e in launched.values()} == {"0.4"}
    assert serve("stop").returncode == 0


def test_a_server_that_dies_at_start_is_one_line_with_its_log(serve: Serve) -> None:
    result = serve("start", "search", "--port", str(free_port()),
                   env={"FAKE_SGLANG_FAIL": "torch.OutOfMemoryError: CUDA out of memory (fake)"})
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("fathom: error: search server") and "exited with status 1" in lines[-1]
    assert "CUDA out of memory (fake)" in lines[-1]
    assert all(not line.startswith("fathom: error") for line in lines[:-1])
    assert serve.state() == {}
    [launch] = serve.launched()
    assert not procs.is_ours(launch["pid"], launch["start_time"])


def test_stop_leaves_a_reused_pid_alone(serve: Serve, sleeper: subprocess.Popen) -> None:
    """A state entry whose PID now belongs to another process (another start time) is dropped, not killed."""
    real = procs.start_time(sleeper.pid)
    serve.state_file.parent.mkdir(parents=True)
    serve.state_file.write_text(json.dumps({"servers": {"search": {
        "name": "search", "url": "http://127.0.0.1:9", "model": "Fathom-Search-4B", "replicas": 1,
        "processes": [{"label": "search", "role": "worker", "pid": sleeper.pid, "start_time": str(int(real) - 1),
                       "url": "http://127.0.0.1:9", "log": "x.log", "argv": []}]}}}))
    result = serve("stop", "search", "--grace", "1")
    assert result.returncode == 0, result.stderr
    assert "already exited" in result.stderr
    assert sleeper.poll() is None and procs.is_ours(sleeper.pid, real)
    assert serve.state() == {}


def test_replicas_share_traffic_behind_the_router(serve: Serve) -> None:
    port = free_port()
    started = serve("start", "search", "--replicas", "2", "--port", str(port))
    assert started.returncode == 0, started.stderr
    workers = serve.launched()
    [router] = serve.launched("router")
    urls = router["argv"][router["argv"].index("--worker-urls") + 1:][:2]
    assert flag(router["argv"], "--policy") == "cache_aware" and flag(router["argv"], "--port") == str(port)
    assert flag(router["argv"], "--host") == "127.0.0.1" and flag(router["argv"], "--prometheus-host") == "127.0.0.1"
    assert sorted(urls) == sorted(f"http://127.0.0.1:{flag(w['argv'], '--port')}" for w in workers)
    assert sorted(w["cuda_visible_devices"] for w in workers) == ["0", "1"]
    answers = set()
    for _ in range(4):
        resp = httpx.post(f"http://127.0.0.1:{port}/generate", json={"text": "hi"}, trust_env=False, timeout=10)
        answers.add(resp.json()["text"])
    assert answers == {f"pid {w['pid']} answers" for w in workers}
    [status] = json.loads(serve("status", "--json").stdout)
    assert status["replicas"] == 2 and status["health"] == "ok" and status["running"] == 4
    assert serve("stop").returncode == 0
    assert not any(procs.is_ours(e["pid"], e["start_time"]) for e in [router, *workers])


def test_without_sglang_the_error_says_how_to_install_it(serve: Serve) -> None:
    result = serve("start", "search", "--port", str(free_port()), env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("fathom: error: sglang is not installed")
    assert "pip install 'fathom-deepresearch[serve]'" in line and "FATHOM_SGLANG_PYTHON" in line
    assert serve.launched() == [] and serve.state() == {}



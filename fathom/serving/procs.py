"""Processes that ``serve`` started, known by PID and start time (a reused PID is not ours).

Each server process is a session (and process-group) leader, so stopping it reaches the
children SGLang spawns (scheduler, detokenizer) too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

GRACE_S = 20.0


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot, from /proc), or None when the
    process does not exist (or has exited and is only a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = raw[raw.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 of stat: starttime


def is_ours(pid: int, started: str | None) -> bool:
    """``pid`` is alive and is the very process recorded (same start time)."""
    return started is not None and start_time(pid) == started


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is a child of this process (it then stops being a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pid: int, started: str | None, *, grace_s: float = GRACE_S) -> bool:
    """SIGTERM the process group led by ``pid`` when ``pid`` is still the recorded process, then
    SIGKILL whatever of the group is left after ``grace_s``. Returns False when the process was
    not ours any more (gone, or its PID reused): nothing is signalled then."""
    _reap(pid)
    if not is_ours(pid, started):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not _group_alive(pid) or _only_zombies(pid):
            return True
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return True


def _only_zombies(pgid: int) -> bool:
    """Every process left in group ``pgid`` has exited (zombies waiting for their parent)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return False
    return True


def visible_gpus() -> list[str] | None:
    """The GPUs this host shows to the processes it starts: ``CUDA_VISIBLE_DEVICES`` when set,
    else the indexes ``nvidia-smi`` lists; None when neither says (no NVIDIA driver here)."""
    restricted = os.environ.get("CUDA_VISIBLE_DEVICES")
    if restricted is not None:
        return [g.strip() for g in restricted.split(",") if g.strip()]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        listed = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in listed.splitlines() if line.strip().isdigit()] or None

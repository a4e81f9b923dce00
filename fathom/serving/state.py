"""The JSON state file of ``serve``: which servers it started, their processes and logs.

It lives in the user state dir (``platformdirs.user_state_path("fathom")``), beside the logs.
It never holds an API key: commands are recorded as launched, and the key is not in them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    import platformdirs

    return platformdirs.user_state_path("fathom") / "serve"


def state_file() -> Path:
    return state_dir() / "servers.json"


def log_dir() -> Path:
    return state_dir() / "logs"


def load() -> dict[str, Any]:
    """name -> server record (``{"url", "model", "replicas", "processes": [...]}``)."""
    try:
        data = json.loads(state_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # an unreadable state file: nothing we can vouch for
    return data.get("servers", {}) if isinstance(data, dict) else {}


def save(servers: dict[str, Any]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"servers": servers}, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def update(name: str, record: dict[str, Any] | None) -> None:
    """Set (or with None remove) one server's record."""
    servers = load()
    if record is None:
        servers.pop(name, None)
    else:
        servers[name] = record
    save(servers)

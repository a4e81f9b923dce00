"""``python -m fathom.serving.supervise LOG -- COMMAND…``: run one server and keep its log.

It adds ``--api-key`` from its environment (never from its own command line, so the key is not
in the state file), writes the server's output to LOG with the key masked, and exits with the
server's exit status. It leads the process group ``serve stop`` signals; a SIGTERM reaches the
server directly, and the supervisor keeps logging until the server has gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

KEY_VAR = "_FATHOM_SERVE_API_KEY"  # a hand-over between serve and this process, not a setting
MASK = b"***"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m fathom.serving.supervise LOG -- COMMAND...\n")
        return 2
    log_path, command = argv[0], argv[2:]
    env = dict(os.environ)
    key = env.pop(KEY_VAR, "") or None
    if key:
        command = [*command, "--api-key", key]
    # the group's SIGTERM is for the server; stay to write its last lines (handlers, not
    # SIG_IGN: an ignored signal would stay ignored in the server after exec)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    secret = key.encode() if key else None
    with open(log_path, "ab", buffering=0) as log:
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            log.write(f"cannot start {command[0]}: {exc}\n".encode())
            return 127
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            log.write(line.replace(secret, MASK) if secret else line)
        while True:
            try:
                return proc.wait()
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue


if __name__ == "__main__":
    code = main(sys.argv[1:])
    raise SystemExit(code if code >= 0 else 128 - code)

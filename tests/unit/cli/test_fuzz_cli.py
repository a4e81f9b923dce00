"""Fuzzing the command line: random argument vectors end with an exit code of 0 to 5 or 130 and,
when they fail, one line on stderr; never a traceback nor the "this is a bug" code 70.

``main`` runs in this process on generated argv lists (no subprocess per case). Commands that
would research, serve, fetch or index get an unknown option first, so they stop while parsing;
the quick ones (runs, cache, corpus stats, prompts, datasets list, serve status, eval …) run for
real against a temporary SQLite database. ``serve start`` only shows its help: it passes unknown
options on to SGLang. Every database URL offered is local or refused on
loopback, and every path lies under a temporary directory.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fathom.cli.main import main
from fathom.settings import SECRET_ENV_VARS
from tests.support.fuzz import TEXT

ALLOWED_CODES = {0, 1, 2, 3, 4, 5, 130}
UNKNOWN = "--zz-no-such-option"  # first after the command path: parsing stops there, nothing runs
STOPPED_WHILE_PARSING = [
    ["research"], ["resume"], ["mcp"], ["corpus", "index"], ["prompts", "fetch"], ["datasets", "fetch"],
    ["eval", "run"], ["eval", "rejudge"],
]
# Never fuzzed beyond --help: it hands unknown options on to SGLang, so no option stops it.
ONLY_HELP = [["serve", "start"]]
GARBAGE = st.one_of(
    TEXT, st.sampled_from(["-", "--", "-x", "--=", "--db=", "--limit=abc", "--json=1", "-h", "--help=x", "\x00", "é", " "]),
)


def sandbox(root: Path) -> dict[str, str]:
    """Environment of one fuzz run: own data, config, state and cache dirs, a temporary database,
    model and search servers that refuse at once (port 9 on loopback), and no keys."""
    return {
        "XDG_DATA_HOME": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_STATE_HOME": str(root / "state"), "XDG_CACHE_HOME": str(root / "cache"), "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        "FATHOM_DB_URL": f"sqlite:///{root / 'runs.db'}",
        "FATHOM_SEARCH_MODEL_URL": "http://127.0.0.1:9", "FATHOM_SYNTH_MODEL_URL": "http://127.0.0.1:9",
        "FATHOM_QUERY_LLM_URL": "http://127.0.0.1:9/v1", "FATHOM_SEARCH_BACKEND": "searxng", "SEARXNG_URL": "http://127.0.0.1:9",
    }


def argv_vectors(root: Path) -> st.SearchStrategy[list[str]]:
    """Argument vectors: a command and its options with odd values, garbage, and unsafe commands
    that must stop while parsing."""
    paths = st.sampled_from([
        str(root / "out.txt"), str(root / "missing" / "out.md"), str(root), str(root / "runs.db"), "", "-",
        str(root / "x\x00y"), str(root / ("long" * 100)),
    ])
    db = st.sampled_from([
        f"sqlite:///{root / 'runs.db'}", f"sqlite:///{root / 'missing' / 'x.db'}", f"sqlite:///{root / 'junk.db'}", "",
        "nonsense", "sqlite://", "postgresql://127.0.0.1:9/x", "mysql://127.0.0.1:9/x", "oracle://127.0.0.1:9/x",
        f"sqlite:///{root}",
    ])
    ints = st.one_of(st.integers(-5, 100).map(str), st.sampled_from(["", "x", "1e3", "99999999999999999999", "-0", "٣"]))
    name = st.one_of(TEXT, st.sampled_from(["run-1", "frames", "search-system", "../../etc/passwd", "", "-"]))
    values = {
        "--db": db, "--out": paths, "--limit": ints, "--grace": ints,
        "--status": st.sampled_from(["answered", "running", "interrupted", "nope", ""]),
        "--format": st.sampled_from(["json", "md", "html", "pdf", "", "JSON"]),
    }
    commands = {  # command path -> (positional arguments, options)
        ("runs", "list"): (0, ["--status", "--limit", "--json", "--db"]),
        ("runs", "show"): (1, ["--json", "--db"]),
        ("runs", "export"): (1, ["--format", "--out", "--db"]),
        ("runs", "delete"): (1, ["--db"]),
        ("cache", "clear"): (0, ["--db"]),
        ("cache", "stats"): (0, ["--db"]),
        ("corpus", "stats"): (0, ["--db", "--json"]),
        ("corpus", "remove"): (1, ["--db"]),
        ("prompts", "list"): (0, []),
        ("prompts", "show"): (1, []),
        ("datasets", "list"): (0, []),
        ("serve", "status"): (0, ["--json"]),
        ("serve", "stop"): (1, ["--grace"]),
        ("eval", "list"): (0, ["--json", "--db"]),
        ("eval", "show"): (1, ["--json", "--db"]),
        ("eval", "export"): (1, ["--out", "--db"]),
        ("eval", "compare"): (2, ["--json", "--db"]),
        ("eval", "delete"): (1, ["--db"]),
        ("eval", "report"): (1, ["--format", "--out", "--db"]),
    }

    @st.composite
    def quick(draw: st.DrawFn) -> list[str]:
        path, (positional, options) = draw(st.sampled_from(sorted(commands.items())))
        argv = list(path)
        for _ in range(draw(st.integers(0, 4))):
            kind = draw(st.integers(0, 3))
            if kind == 0 and options:
                option = draw(st.sampled_from(options))
                argv += [option] if option in ("--json",) else [option, draw(values.get(option, name))]
            elif kind == 1 and positional:
                argv.append(draw(paths if path[0] == "corpus" else name))
            elif kind == 2:
                argv.append(draw(GARBAGE))
            else:
                argv.append(draw(st.sampled_from(["--help", "--json", "--db", "--out"])))
        return argv

    stopped = st.builds(lambda path, rest: [*path, UNKNOWN, *rest], st.sampled_from(STOPPED_WHILE_PARSING),
                        st.lists(GARBAGE, max_size=3))
    helps = st.builds(lambda path: [*path, "--help"], st.sampled_from([*STOPPED_WHILE_PARSING, *ONLY_HELP, *map(list, commands)]))
    top = st.lists(st.one_of(GARBAGE, st.sampled_from(["--version", "--help", "runs", "eval", "serve", "nope"])), max_size=3)
    return st.one_of(quick(), stopped, helps, top)


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``fathom ARGV`` in this process: exit code, stdout, stderr. The stderr includes what any
    thread the command left behind reported while dying (Python prints it in a real process)."""
    out, err = io.StringIO(), io.StringIO()
    old_argv, old_stdin, old_hook = sys.argv, sys.stdin, threading.excepthook
    sys.argv, sys.stdin = ["fathom", *argv], io.StringIO("")  # never waits for a human
    threading.excepthook = lambda args: err.write(f"Exception in thread: Traceback {args.exc_type.__name__}\n")
    before = set(threading.enumerate())
    code: object = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            finally:
                for thread in set(threading.enumerate()) - before:
                    thread.join(timeout=2)
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv, sys.stdin, threading.excepthook = old_argv, old_stdin, old_hook
    return (code if isinstance(code, int) else 0 if code is None else 1), out.getvalue(), err.getvalue()


def check_cli(argv: list[str]) -> tuple[int, str, str]:
    code, out, err = run_main(argv)
    assert code in ALLOWED_CODES, f"fathom {argv!r} exited {code}: {err.strip()}"
    assert "Traceback" not in out + err, err
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("fathom: error: "), f"fathom {argv!r}: {err!r}"
    return code, out, err


@pytest.fixture
def sandboxed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in [*SECRET_ENV_VARS.values()]:
        monkeypatch.delenv(var, raising=False)
    for key in [k for k in os.environ if k.startswith("FATHOM_")]:
        monkeypatch.delenv(key, raising=False)
    for key, value in sandbox(tmp_path).items():
        monkeypatch.setenv(key, value)
    for folder in ("data", "config", "state", "cache", "home", "tmp", "missing"):
        (tmp_path / folder).mkdir(exist_ok=True)
    (tmp_path / "missing").rmdir()
    (tmp_path / "junk.db").write_bytes(b"not a database\x00" * 10)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # a bare --db or --out value is a relative file name: it lands here
    return tmp_path


FUZZ = settings(max_examples=70, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_random_argument_vectors_exit_cleanly_with_one_line(sandboxed: Path, data: st.DataObject) -> None:
    check_cli(data.draw(argv_vectors(sandboxed), label="argv"))


def test_the_unsafe_commands_stop_while_parsing(sandboxed: Path) -> None:
    """What keeps the fuzz from starting research or servers: the unknown option comes first."""
    for path in STOPPED_WHILE_PARSING:
        code, out, err = check_cli([*path, UNKNOWN, "When did the Kestrel Bridge open?"])
        assert code == 2 and f"No such option: {UNKNOWN}" in err and not out


def test_a_database_path_that_is_a_directory_is_one_line_and_no_dying_thread(sandboxed: Path) -> None:
    """Found by fuzzing: SQLite failed to open a directory in aiosqlite's thread, which later
    printed 'Exception in thread … Event loop is closed' tracebacks after the error line."""
    for command in (["cache", "stats"], ["runs", "list"], ["eval", "list"]):
        code, _, err = check_cli([*command, "--db", f"sqlite:///{sandboxed}"])
        assert code == 4 and "is a directory, not a database file" in err


def test_a_database_path_with_a_nul_is_a_usage_error(sandboxed: Path) -> None:
    """Found by the long fuzz run: SQLite's driver raised ValueError ("embedded null byte") from
    its thread, reported as a bug (exit 70) after a thread's traceback line."""
    for command in (["corpus", "remove"], ["cache", "stats"], ["runs", "list"]):
        code, _, err = check_cli([*command, "--db", str(sandboxed / "x\x00y"), *(["abc"] if command[0] == "corpus" else [])])
        assert code == 2 and "cannot contain a NUL character" in err

"""API keys reach the servers that need them and nothing else: not state, checkpoints, records or output."""

from __future__ import annotations

import json
import sqlite3

from tests.conftest import fake_env, research_script
from tests.fakes.sglang import FakeSGLang

KEY = "sk-fathom-SECRET-4242"


def test_keys_never_enter_the_run_database_or_output(cli, db_url, searxng, web):
    with FakeSGLang(api_key=KEY) as sglang:  # the model server demands the key
        sglang.add(*research_script(web))
        env = {**fake_env(sglang, searxng, web), "FATHOM_MODEL_API_KEY": KEY, "OPENAI_API_KEY": KEY}
        result = cli("research", "--json", "When did the Kestrel Bridge open?", env=env)
        assert result.returncode == 0, result.stderr
        assert sglang.requests  # the key worked: the server answered
    exported = cli("runs", "export", json.loads(result.stdout)["run_id"]).stdout
    listed = cli("runs", "list", "--json").stdout
    for text in (result.stdout, result.stderr, exported, listed):
        assert KEY not in text
    raw = b""
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                raw += repr(row).encode()
    assert raw and KEY.encode() not in raw

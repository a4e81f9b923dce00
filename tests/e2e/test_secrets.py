"""API keys reach the servers that need them and nothing else: not state, checkpoints, records,
the cache, logs, output or exports.

Every key the settings know is set, each to a value of its own, and each service that takes one is
a loopback fake that refuses requests without it: the search model and the query LLM (two fake
SGLang servers), Tavily and Serper (one run each), the GitHub API and the Jina reader (which
record the headers they got). ``OPENAI_API_KEY`` goes only to ``openai:`` specs, that is to
api.openai.com, which no test reaches: here it is set, and must turn up nowhere, fakes included.
Then the run database (every table, the cache rows too), every file the runs wrote (data, state and
cache dirs, exports), the logs (stderr of each command, and every log record of the in-process
run) and the ``--json`` output are scanned for every key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sqlite3

from fathom.app.runs import execute
from fathom.app.services import build_services, toolbox
from fathom.settings import SECRET_ENV_VARS, Settings
from fathom.store import open_store
from tests.conftest import call, fake_env
from tests.fakes.search_apis import FakeSerper, FakeTavily
from tests.fakes.sglang import FakeSGLang
from tests.fakes.sites import FakeSites
from tests.unit.cli.test_fuzz_cli import run_main
from tests.unit.tools.test_readers import no_dns

KEYS = {  # env var -> a value found nowhere else
    "TAVILY_API_KEY": "tvly-SECRET-tavily-1111",
    "SERPER_API_KEY": "serper-SECRET-2222",
    "OPENAI_API_KEY": "sk-SECRET-openai-3333",
    "FATHOM_QUERY_LLM_API_KEY": "sk-SECRET-queryllm-4444",
    "FATHOM_MODEL_API_KEY": "sk-SECRET-model-5555",
    "GITHUB_TOKEN": "ghp_SECRET_github_6666",
    "JINA_API_KEY": "jina_SECRET_7777",
}
QUESTION = "When did the Kestrel Bridge open?"
EVIDENCE = ("Rationale:\nThe heritage page gives the date.\n\nEvidence:\nThe bridge opened on 14 June 1897.\n\n"
            "Summary:\nIt opened on 14 June 1897.")


def test_the_settings_know_no_other_key() -> None:
    """A key added to the settings must be added to this test too."""
    assert set(SECRET_ENV_VARS.values()) == set(KEYS)


def leaked(text: str | bytes) -> list[str]:
    """The names of the keys found in ``text``."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [name for name, key in KEYS.items() if key.encode() in data]


def database_rows(db_url: str) -> tuple[bytes, set[str]]:
    """Every row of every table, as bytes; and the tables that have rows."""
    raw, filled = b"", set()
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                raw += repr(row).encode()
                filled.add(table)
    return raw, filled


def script(sglang: FakeSGLang, url: str) -> None:
    sglang.add(
        "Search first.</think>\n\n" + call("search_urls", query="Kestrel Bridge opening"),
        "Read the heritage page.</think>\n\n" + call("query_url", url=url, goal=QUESTION),
        "It opened on 14 June 1897.</think>\n\nThe Kestrel Bridge opened in \\boxed{1897}.",
    )


async def research_in_process(question: str, settings: Settings, run_id: str) -> dict:
    """What `fathom research` does, with a toolbox that resolves no host name."""
    inputs = {"question": question, "deepresearch": False, "review_plan": False, "language": settings.language}
    async with (open_store(settings.db_url) as store, build_services(settings, database=store.db) as services,
                toolbox(settings, resolver=no_dns) as tools):
        record = await store.runs.create(run_id, question, options={**settings.public_dict(), "inputs": inputs})
        return await execute(store, record, settings, payload=inputs, services=dataclasses.replace(services, tools=tools))


def test_no_key_turns_up_in_the_database_cache_logs_output_or_exports(cli, db_url, web, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    data_home = tmp_path / "xdg-data"
    dirs = {"XDG_DATA_HOME": str(data_home), "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_CACHE_HOME": str(tmp_path / "cache")}
    results = [{"title": "Kestrel Bridge history", "url": web.url("/article"), "snippet": "Opened in 1897."}]
    outputs: list[str] = []
    with (FakeSGLang(api_key=KEYS["FATHOM_MODEL_API_KEY"]) as model,
          FakeSGLang(api_key=KEYS["FATHOM_QUERY_LLM_API_KEY"]) as query_llm,
          FakeTavily(results, api_key=KEYS["TAVILY_API_KEY"]) as tavily,
          FakeSerper(results, api_key=KEYS["SERPER_API_KEY"]) as serper,
          FakeSites() as sites):
        query_llm.add(EVIDENCE, EVIDENCE, EVIDENCE)
        env = {
            **fake_env(model, tavily, web), **KEYS, **dirs,
            "FATHOM_QUERY_LLM": f"{query_llm.url}/v1",
            "FATHOM_ALLOW_HOSTS": f"{web.hostport},{sites.hostport}",
            "FATHOM_GITHUB_API_URL": sites.base("github-api"), "FATHOM_GITHUB_RAW_URL": sites.base("github-raw"),
            "FATHOM_JINA_URL": sites.base("jina"),
        }

        # 1. `research --json` on Tavily, every page through the Jina reader.
        script(model, web.url("/article"))
        first = cli("research", "--json", QUESTION,
                    env={**env, "FATHOM_SEARCH_BACKEND": "tavily", "TAVILY_BASE_URL": tavily.url, "FATHOM_READER": "jina"})
        assert first.returncode == 0, first.stderr
        outputs += [first.stdout, first.stderr]
        assert tavily.requests and sites.headers_of("/jina"), "Tavily and Jina were used"

        # 2. `eval run` on Serper.
        script(model, web.url("/article"))
        rows = tmp_path / "bridge.jsonl"
        rows.write_text(json.dumps({"id": "q1", "question": QUESTION, "answer": "1897"}) + "\n", encoding="utf-8")
        second = cli("eval", "run", str(rows), "--judge", "exact", "--concurrency", "1", "--json", "-q",
                     env={**env, "FATHOM_SEARCH_BACKEND": "serper", "SERPER_BASE_URL": serper.url}, timeout=120)
        assert second.returncode == 0, second.stderr
        outputs += [second.stdout, second.stderr]
        assert serper.requests

        # 3. A run in this process that reads GitHub (no host name is resolved: the fakes' base URLs
        #    are loopback literals), so that its log records can be read too.
        model.add(
            "Read the repository.</think>\n\n" + call("query_url", url="https://github.com/acme/widgets",
                                                      goal="What does the toolkit do?"),
            "It aligns sprockets.</think>\n\n\\boxed{sprocket alignment}",
        )
        settings = Settings.load({"db_url": db_url, "search_backend": "serper", "serper_url": serper.url,
                                  "search_model_url": model.url, "query_llm": f"{query_llm.url}/v1", "verify": False,
                                  "allow_hosts": [web.hostport, sites.hostport], "model_retries": 1,
                                  "github_api_url": sites.base("github-api"), "github_raw_url": sites.base("github-raw"),
                                  "jina_url": sites.base("jina")}, environ=KEYS)
        third = asyncio.run(research_in_process("What does the widgets toolkit do?", settings, "secrets-github"))
        assert third["status"] == "answered", third
        assert any(r["path"] == "/v1/chat/completions" for r in query_llm.requests), "the query LLM was asked"
        github = sites.headers_of("/github-api")
        assert github and all(KEYS["GITHUB_TOKEN"] in h.get("authorization", "") for h in github)
        assert all(KEYS["JINA_API_KEY"] in h.get("authorization", "") for h in sites.headers_of("/jina"))

    # Each key went to its own service only (the fakes refused any request without theirs).
    assert set(model.authorizations) == {f"Bearer {KEYS['FATHOM_MODEL_API_KEY']}"}
    assert set(query_llm.authorizations) == {f"Bearer {KEYS['FATHOM_QUERY_LLM_API_KEY']}"}  # never OpenAI's
    assert all(leaked(json.dumps(r)) == ["TAVILY_API_KEY"] for r in tavily.requests)
    assert all(leaked(json.dumps(r)) == ["SERPER_API_KEY"] for r in serper.requests)
    assert all(leaked(str(h)) == ["JINA_API_KEY"] for h in sites.headers_of("/jina"))
    assert all(leaked(str(h)) == ["GITHUB_TOKEN"] for h in github)

    run_id = json.loads(first.stdout)["run_id"]
    monkeypatch.setenv("FATHOM_DB_URL", db_url)
    exports = [  # in this process: a CLI start-up each would cost seconds
        run_main(["runs", "export", run_id]),
        run_main(["runs", "export", "secrets-github", "--format", "md"]),
        run_main(["runs", "export", run_id, "--format", "md", "--out", str(tmp_path / "run.md")]),
        run_main(["runs", "list", "--json"]),
        run_main(["runs", "show", "secrets-github"]),
        run_main(["eval", "export", "bridge", "--out", str(tmp_path / "bridge-export.jsonl")]),
    ]
    assert [code for code, _, _ in exports] == [0] * len(exports), [err for _, _, err in exports]
    outputs += [text for _, out, err in exports for text in (out, err)]
    assert (tmp_path / "bridge-export.jsonl").read_text(encoding="utf-8").strip()

    found = {f"output {n}": leaked(text) for n, text in enumerate(outputs)}
    found["log records"] = leaked("\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records))
    raw, filled = database_rows(db_url)
    assert {"fathom_cache_search", "fathom_cache_pages", "fathom_cache_evidence", "fathom_checkpoints", "fathom_runs",
            "fathom_eval_items"} <= filled, filled
    found["database"] = leaked(raw)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != rows]
    assert {"run.md", "bridge-export.jsonl"} <= {p.name for p in files}
    found.update({str(p.relative_to(tmp_path)): leaked(p.read_bytes()) for p in files})
    assert {where: names for where, names in found.items() if names} == {}

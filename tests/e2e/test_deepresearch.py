"""Deep research reports: plan, review, write, and citations checked against what the run retrieved."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from fathom.app.runs import run_question
from fathom.app.services import build_services
from tests.conftest import fake_env, fake_settings, research_script
from tests.fakes.sglang import FakeSGLang
from tests.fakes.synthesizer import PLAN, report_text, synthesizer

QUESTION = "When did the Kestrel Bridge open?"


@pytest.fixture
def synth(web) -> Iterator[FakeSGLang]:
    with FakeSGLang(fallback=synthesizer(web), model_path="FractalAIResearch/Fathom-Synthesizer-4B") as fake:
        yield fake


async def run_deep(settings, inputs, *, saver=None, run_id="deep"):
    async with build_services(settings) as services:
        return await run_question(inputs, settings, run_id=run_id, services=services, checkpointer=saver)


async def test_report_keeps_only_retrieved_citations_and_rebuilds_sources(sglang, searxng, web, synth):
    sglang.add(*research_script(web))
    settings = fake_settings(sglang, searxng, web, synth_model_url=synth.url)
    summary = await run_deep(settings, {"question": QUESTION, "deepresearch": True})

    assert summary["answer"] == "1897" and summary["report_status"] == "written"
    assert summary["plan"] == PLAN
    report = summary["report"]
    article, tram = web.url("/article"), web.url("/news/tram")
    assert "invented.example" not in report
    assert f"[{tram}]" in report and "#section-2" not in report  # near-miss normalized
    assert f"[{article}/]" not in report and f"[{article}]" in report
    citations = summary["citations"]
    assert citations["kept"] == 2 and citations["removed"] == 1
    # Sources carry the titles of the pages read, and the report lists them with their URLs.
    assert [s["url"] for s in citations["sources"]] == [article, tram]
    assert citations["sources"][0]["title"] == "Kestrel Bridge – History and Engineering | Rivertown Heritage"
    assert report.count("## Sources used") == 1
    assert f"1. [Kestrel Bridge – History and Engineering \\| Rivertown Heritage](<{article}>)\n2. " in report
    assert citations["removed_urls"] == ["https://invented.example/fake-fact"]

    plan_request, write_request = (r["json"] for r in synth.requests if r["path"] == "/generate")
    # plan stops at </think>; write extends plan's prompt byte for byte (the server's cache serves it).
    assert plan_request["sampling_params"]["stop"] == ["</think>"]
    assert plan_request["sampling_params"]["temperature"] == 0.4
    assert write_request["text"].startswith(plan_request["text"] + "<think>\n" + PLAN)
    assert write_request["text"].endswith("</think>")
    assert QUESTION in plan_request["text"] and "14 June 1897" in plan_request["text"]


async def test_report_cut_by_length_is_continued(sglang, searxng, web):
    sglang.add(*research_script(web))
    with FakeSGLang(fallback=synthesizer(web, cut_first=True)) as synth:
        settings = fake_settings(sglang, searxng, web, synth_model_url=synth.url)
        summary = await run_deep(settings, {"question": QUESTION, "deepresearch": True})
        writes = [r["json"]["text"] for r in synth.requests if r["path"] == "/generate"][1:]
    assert summary["citations"]["continuations"] == 1
    assert len(writes) == 2 and writes[1] == writes[0] + report_text(web)[:60]
    assert "14 June 1897" in summary["report"] and "## S1 History" in summary["report"]


async def test_leaked_think_is_removed_from_the_report(sglang, searxng, web):
    sglang.add(*research_script(web))
    leaky = f"<think>private musing</think>\n# Executive Summary\nOpened 1897. [{web.url('/article')}]\n"
    with FakeSGLang(fallback=synthesizer(web, report=leaky)) as synth:
        settings = fake_settings(sglang, searxng, web, synth_model_url=synth.url)
        summary = await run_deep(settings, {"question": QUESTION, "deepresearch": True})
    assert "private musing" not in summary["report"] and "<think>" not in summary["report"]


async def test_trace_larger_than_the_synthesizer_context_is_fitted(sglang, searxng, web):
    huge_reads = "r</think>\n" + "".join(
        f'<tool_call>\n{{"name": "query_url", "arguments": {{"url": "{web.url("/huge")}?p={i}", "goal": "filler"}}}}\n</tool_call>'
        for i in range(3)
    )
    sglang.add(huge_reads, *research_script(web))
    with FakeSGLang(fallback=synthesizer(web), context_length=9000) as synth:
        settings = fake_settings(sglang, searxng, web, synth_model_url=synth.url, synth_max_new_tokens=1500)
        summary = await run_deep(settings, {"question": QUESTION, "deepresearch": True})
        plan_prompt = synth.prompts[0]
    assert summary["report_status"] == "written"
    assert len(plan_prompt) // 4 + 1500 <= 9000  # fits the server's window (fake: 4 chars a token)
    assert "[shortened:" in plan_prompt
    assert QUESTION in plan_prompt and "14 June 1897" in plan_prompt  # question and latest evidence kept


@pytest.mark.parametrize(
    "decision, expect",
    [
        ("accept", "written"),
        ({"action": "edit", "plan": "## My plan\nOnly S1."}, "written"),
        ("abort", "aborted"),
    ],
)
async def test_plan_review_interrupts_and_resumes(sglang, searxng, web, synth, decision, expect):
    sglang.add(*research_script(web))
    settings = fake_settings(sglang, searxng, web, synth_model_url=synth.url)
    saver = InMemorySaver()
    waiting = await run_deep(settings, {"question": QUESTION, "deepresearch": True, "review_plan": True}, saver=saver)
    assert waiting["review"] == {"kind": "plan_review", "question": QUESTION, "plan": PLAN}
    assert waiting["report"] is None

    bad = await run_deep(settings, Command(resume={"action": "rewrite"}), saver=saver)
    assert "unknown action 'rewrite'" in bad["review"]["error"]

    done = await run_deep(settings, Command(resume=decision), saver=saver)
    assert "review" not in done and done["report_status"] == expect
    writes = [r["json"]["text"] for r in synth.requests if r["path"] == "/generate"][1:]
    if expect == "aborted":
        assert done["report"] is None and not writes
    elif isinstance(decision, dict):
        assert writes[0].endswith("<think>\n## My plan\nOnly S1.\n</think>") and done["plan"] == "## My plan\nOnly S1."
    else:
        assert done["plan"] == PLAN


def test_cli_deepresearch_writes_the_report_and_json(cli, sglang, searxng, web, synth, tmp_path):
    sglang.add(*research_script(web))
    env = {**fake_env(sglang, searxng, web), "FATHOM_SYNTH_MODEL_URL": synth.url}
    out = tmp_path / "report.html"
    result = cli("research", "--deepresearch", "--json", "--format", "html", "--out", str(out), QUESTION, env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["plan"] == PLAN and data["citations"]["removed"] == 1 and data["report_path"] == str(out)
    assert {"kept", "removed", "sources"} <= set(data["citations"]) and data["verification"]
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and f'href="{web.url("/article")}"' in page
    assert "invented.example" not in page
    # The report is re-rendered from the run database.
    exported = cli("runs", "export", data["run_id"], "--format", "md")
    assert exported.returncode == 0 and exported.stdout.startswith(f"# {QUESTION}") and "## Sources used" in exported.stdout


@pytest.mark.parametrize(
    "args, stdin, expect",
    [
        (["--plan-action", "accept"], "", "written"),
        (["--plan-action", "abort"], "", "aborted"),
        ([], "edit\n## Edited plan\nS1 only.\n", "written"),
        ([], "abort\n", "aborted"),
    ],
)
def test_cli_plan_review_without_a_terminal(cli, sglang, searxng, web, synth, tmp_path, args, stdin, expect):
    sglang.add(*research_script(web))
    env = {**fake_env(sglang, searxng, web), "FATHOM_SYNTH_MODEL_URL": synth.url}
    result = cli("research", "-q", "--review-plan", "--json", "--out", str(tmp_path / "r.md"), *args, QUESTION,
                 env=env, input=stdin)
    data = json.loads(result.stdout)
    assert data["report_status"] == expect
    assert result.returncode == 0, result.stderr  # the answer stands; only the report was declined
    if stdin.startswith("edit"):
        assert data["plan"] == "## Edited plan\nS1 only."


def test_cli_review_waits_then_resume_continues(cli, sglang, searxng, web, synth, tmp_path):
    sglang.add(*research_script(web))
    env = {**fake_env(sglang, searxng, web), "FATHOM_SYNTH_MODEL_URL": synth.url}
    waiting = cli("research", "-q", "--review-plan", "--run-id", "rv", QUESTION, env=env, input="")
    assert waiting.returncode == 5 and "fathom resume rv" in waiting.stderr
    listed = [json.loads(line) for line in cli("runs", "list", "--json").stdout.splitlines()]
    assert listed[0]["status"] == "waiting"
    waiting_rows = cli("runs", "list", "--status", "waiting", "--json").stdout.splitlines()
    assert [json.loads(line)["run_id"] for line in waiting_rows] == ["rv"]
    still = cli("resume", "-q", "--json", "rv", env=env, input="")  # no decision: it keeps waiting
    assert still.returncode == 5 and "fathom resume rv" in still.stderr
    resumed = cli("resume", "-q", "--json", "--plan-action", "accept", "--out", str(tmp_path / "rv.md"), "rv", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["report_status"] == "written"
    assert (tmp_path / "rv.md").read_text().startswith(f"# {QUESTION}")


def test_resuming_a_finished_run_keeps_its_status(cli, sglang, searxng, web):
    """A finished run whose report failed is `failed` (exit 1, in --json and in `runs list`), and
    stays so when resumed (there is nothing to do)."""
    sglang.add(*research_script(web))
    with FakeSGLang(fallback=synthesizer(web, report="   ")) as synth:
        env = {**fake_env(sglang, searxng, web), "FATHOM_SYNTH_MODEL_URL": synth.url}
        first = cli("research", "-q", "--json", "--deepresearch", "--run-id", "empty-report", QUESTION, env=env)
        assert first.returncode == 1, first.stderr
        assert json.loads(first.stdout)["status"] == "failed" and json.loads(first.stdout)["answer"] == "1897"
        assert first.stderr.startswith("fathom: error:") and first.stderr.count("\n") == 1
        statuses, codes = [], []
        for _ in range(2):
            [row] = [json.loads(line) for line in cli("runs", "list", "--json").stdout.splitlines()]
            statuses.append(row["status"])
            resumed = cli("resume", "-q", "--json", "empty-report", env=env)
            codes.append(resumed.returncode)
            statuses.append(json.loads(resumed.stdout)["status"])
    assert statuses == ["failed"] * 4
    assert codes == [1, 1]

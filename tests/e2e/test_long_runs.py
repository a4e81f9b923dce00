"""Long runs in a small context: folding keeps a run researching to its round limit, durably.

The fake model never stops researching on its own (two new pages a round, the answer's page in
round 2) until it is told its budget is used up; the context is small so a test is quick.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fathom.app.runs import research, resume, run_question
from fathom.app.services import build_services
from fathom.cli.options import EXIT_NO_ANSWER
from fathom.models.base import ModelUnavailableError
from tests.conftest import fake_env, fake_settings
from tests.fakes.sglang import FakeSGLang, Reply, count_tokens, keep_researching

QUESTION = "When did the Kestrel Bridge open to traffic?"
ANSWER_LINE = "The Kestrel Bridge opened to traffic on 14 June 1897, after four years of building."
CONTEXT = 16384
ROUNDS = 20
READS = 2
LIMITS: dict[str, Any] = {
    "context_tokens": CONTEXT,
    "answer_reserve_tokens": 1000,
    "max_new_tokens_per_turn": 512,
    "max_rounds": ROUNDS,
}


def add_pages(web, count: int = ROUNDS * READS) -> None:
    for n in range(count):
        paragraphs = [
            f"Record {n}.{i} on the tolls of the Kestrel Bridge lists entry {n * 31 + i} in the district archive. " * 2
            for i in range(8)
        ]
        if n == 0:
            paragraphs.insert(4, ANSWER_LINE)
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        web.add_page(f"/p/{n}", f"<html><head><title>Archive page {n}</title></head><body>{body}</body></html>")


def calls(web):
    def for_round(round_no: int) -> list[dict[str, Any]]:
        if round_no == 1:
            return [{"name": "search_urls", "arguments": {"query": "Kestrel Bridge opening"}}]
        first = (round_no - 2) * READS
        return [
            {"name": "query_url", "arguments": {"url": web.url(f"/p/{n}"), "goal": "When did the Kestrel Bridge open?"
                                                if n == 0 else "Kestrel Bridge tolls"}}
            for n in range(first, first + READS)
        ]

    return for_round


def latest_user_turn(prompt: str) -> str:
    return prompt[prompt.rfind("<|im_start|>user"):]


async def run(settings) -> dict[str, Any]:
    async with build_services(settings) as services:
        return await run_question(QUESTION, settings, run_id="long", services=services)


@pytest.fixture
def long_web(web):
    add_pages(web)
    return web


async def test_folding_reaches_the_round_limit_inside_the_context(searxng, long_web):
    web = long_web
    with FakeSGLang(context_length=CONTEXT, fallback=keep_researching(calls(web), "14 June 1897")) as sglang:
        summary = await run(fake_settings(sglang, searxng, web, **LIMITS))
        prompts, requests = list(sglang.prompts), list(sglang.requests)

    assert summary["status"] == "answered" and summary["answer"] == "14 June 1897"
    assert summary["rounds"] == ROUNDS and len(prompts) == ROUNDS
    # No answer was forced before the round limit: only the last turn was told to answer, and why.
    forced = [i for i, p in enumerate(prompts) if "budget is used up" in latest_user_turn(p)]
    assert forced == [ROUNDS - 1] and f"the limit of {ROUNDS} turns" in prompts[-1]
    # Folds happened, in a few large steps, each recorded with its estimated saving.
    folds = summary["folds"]
    assert 2 <= len(folds) <= ROUNDS // 3
    assert all(f["tokens_after"] < f["tokens_before"] and f["message_ids"] for f in folds)
    assert [f["at_round"] for f in folds] == sorted({f["at_round"] for f in folds})
    # The prompt is append-only except at a fold: the prefix changes once per fold.
    breaks = [i + 1 for i, (a, b) in enumerate(zip(prompts, prompts[1:])) if not b.startswith(a)]
    assert breaks == [f["at_round"] - 1 for f in folds]
    # No request ever asked for more than the context.
    for request in requests:
        body = request["json"]
        assert count_tokens(body["text"]) + body["sampling_params"]["max_new_tokens"] <= CONTEXT
    # The answer, read in round 2 and folded since, is still in the final prompt.
    assert folds[0]["message_ids"] and "[folded" in prompts[-1]
    assert ANSWER_LINE in prompts[-1]
    # Every result is still whole in the transcript: what the synthesizer and `runs show` read.
    assert len(summary["tool_calls"]) == 1 + (ROUNDS - 2) * READS and all(c["ok"] for c in summary["tool_calls"])


async def test_answer_strategy_forces_the_answer_when_the_context_fills(searxng, long_web):
    web = long_web
    with FakeSGLang(context_length=CONTEXT, fallback=keep_researching(calls(web), "14 June 1897")) as sglang:
        summary = await run(fake_settings(sglang, searxng, web, **LIMITS, context_strategy="answer"))
        prompts = list(sglang.prompts)
    assert summary["status"] == "answered" and summary["answer"] == "14 June 1897"
    assert summary["rounds"] < ROUNDS and not summary["folds"]
    assert f"the context window of {CONTEXT} tokens" in latest_user_turn(prompts[-1])
    assert all(a.startswith(b.removesuffix("<|im_start|>assistant\n<think>")) for b, a in zip(prompts, prompts[1:]))


async def test_resume_after_a_crash_at_a_fold_sends_the_same_prompts(searxng, long_web, tmp_path):
    """The run dies (model server down) in the turn that folds; `resume` folds and renders the same."""
    web = long_web
    model = keep_researching(calls(web), "14 June 1897")
    db_a, db_b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    with FakeSGLang(context_length=CONTEXT, fallback=model) as sglang:
        baseline = await research(QUESTION, fake_settings(sglang, searxng, web, **LIMITS, db_url=db_a), run_id="a")
        expected = list(sglang.prompts)
    crash_at = baseline["folds"][0]["at_round"]

    down = {"on": True}

    def crashing(prompt: str) -> str | Reply:
        if down["on"] and prompt.count("<|im_start|>assistant\n<think>") == crash_at:
            return Reply(status=503, error="server going away")
        return model(prompt)

    with FakeSGLang(context_length=CONTEXT, fallback=crashing) as sglang:
        settings = fake_settings(sglang, searxng, web, **LIMITS, db_url=db_b)
        with pytest.raises(ModelUnavailableError):
            await research(QUESTION, settings, run_id="b")
        before = [p for p in sglang.prompts]
        down["on"] = False
        resumed = await resume("b", {"search_model_url": sglang.url}, db_url=db_b)
        after = list(sglang.prompts)[len(before):]

    # The prompts up to the crash, the failed one (sent twice: one retry) and every one after the
    # resume are byte for byte those of the run that never crashed.
    assert before[: crash_at - 1] == expected[: crash_at - 1]
    assert set(before[crash_at - 1 :]) == {expected[crash_at - 1]}
    assert after == expected[crash_at - 1 :]
    assert resumed["answer"] == baseline["answer"] == "14 June 1897"
    def shape(folds):  # message ids are the run's own; the rest must match
        return [(f["at_round"], len(f["message_ids"]), f["tokens_before"], f["tokens_after"]) for f in folds]

    assert shape(resumed["folds"]) == shape(baseline["folds"])


@pytest.mark.parametrize("protocol", ["fathom", "chat"])
async def test_a_forced_turn_that_keeps_calling_tools_ends_unanswered(protocol, sglang, searxng, web):
    search = "<tool_call>\n" + json.dumps({"name": "search_urls", "arguments": {"query": "kestrel"}}) + "\n</tool_call>"
    sglang.fallback = lambda prompt: "Not done yet.</think>\n\n" + search
    summary = await run(fake_settings(sglang, searxng, web, max_rounds=2, search_protocol=protocol))

    assert summary["status"] == "unanswered" and summary["answer"] is None
    assert "kept calling tools in 2 forced final turns (the limit of 2 turns)" in summary["error"]
    assert summary["rounds"] == 3  # one research turn, the forced turn, and the one more ask
    # the refused calls never ran: one search, from the research turn
    assert [c["name"] for c in summary["tool_calls"] if c["ok"]] == ["search_urls"]
    assert len(searxng.requests) >= 1 and {r["params"]["q"] for r in searxng.requests} == {"kestrel"}
    last = sglang.requests[-1]["json"]
    text = last["text"] if protocol == "fathom" else json.dumps(last["messages"])
    assert "not run: your research budget is used up" in text


def test_the_run_registry_records_a_run_the_model_would_not_answer(cli, sglang, searxng, web):
    search = "<tool_call>\n" + json.dumps({"name": "search_urls", "arguments": {"query": "kestrel"}}) + "\n</tool_call>"
    sglang.fallback = lambda prompt: "Not done yet.</think>\n\n" + search
    result = cli("research", "When did the Kestrel Bridge open?", "--max-rounds", "2", "--json", "-q",
                 env=fake_env(sglang, searxng, web), timeout=120)
    assert result.returncode == EXIT_NO_ANSWER, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "unanswered" and "kept calling tools" in summary["error"]
    listed = cli("runs", "list", "--status", "unanswered", "--json")
    assert [json.loads(line)["run_id"] for line in listed.stdout.splitlines()] == [summary["run_id"]]


async def test_runs_show_lists_the_folds(cli, db_url, searxng, long_web):
    web = long_web
    with FakeSGLang(context_length=CONTEXT, fallback=keep_researching(calls(web), "14 June 1897")) as sglang:
        summary = await research(QUESTION, fake_settings(sglang, searxng, web, **LIMITS, db_url=db_url), run_id="long")
    folds = summary["folds"]
    assert folds
    shown = cli("runs", "show", "long").stdout
    lines = [line for line in shown.splitlines() if line.startswith("fold")]
    assert len(lines) == len(folds)
    first = folds[0]
    assert lines[0] == (
        f"fold before round {first['at_round']}: {len(first['message_ids'])} tool results folded, "
        f"prompt ~{first['tokens_before']:,} → ~{first['tokens_after']:,} tokens"
    )
    assert json.loads(cli("runs", "show", "--json", "long").stdout)["folds"] == folds


"""verify: the answer is judged against the evidence; unsupported answers go back to research."""

from __future__ import annotations

import json

from fathom.app.runs import run_question
from fathom.app.services import build_services
from tests.conftest import call, fake_settings, research_script
from tests.fakes.sglang import Reply

JUDGE = "You check research answers"


def judge(supported: bool, reason: str, urls: list[str] = (), missing: str = "") -> Reply:
    body = {"supported": supported, "reason": reason, "missing": missing, "urls": list(urls)}
    return Reply(f"<think>weighing</think>\n```json\n{json.dumps(body)}\n```", when=JUDGE)


async def run(settings):
    async with build_services(settings) as services:
        return await run_question("When did the Kestrel Bridge open?", settings, run_id="v", services=services)


async def test_unsupported_answer_goes_back_then_passes(sglang, searxng, web):
    sglang.add(judge(False, "Only a snippet mentions it.", missing="a page with the opening date"))
    sglang.add(judge(True, "The heritage page gives 14 June 1897.", [web.url("/article"), "https://made.up/x"]))
    sglang.add("s</think>\n" + call("search_urls", query="kestrel bridge"), "Snippet says 1897.</think>\n\\boxed{1897}")
    sglang.add(*research_script(web))
    summary = await run(fake_settings(sglang, searxng, web, verify=True))

    assert summary["answer"] == "1897" and summary["status"] == "answered"
    verification = summary["verification"]
    assert verification["verdict"] == "supported" and verification["loops"] == 1
    assert verification["urls"] == [web.url("/article")]  # a URL the run never retrieved is dropped
    assert "14 June 1897" in verification["reason"]
    note_prompt = sglang.prompts[2]
    assert "found it unsupported: Only a snippet mentions it." in note_prompt
    assert "Still missing: a page with the opening date." in note_prompt
    judge_requests = [r for r in sglang.requests if r["path"] == "/v1/chat/completions"]
    assert len(judge_requests) == 2
    assert "14 June 1897" in judge_requests[1]["json"]["messages"][1]["content"]  # evidence handed over


async def test_verification_loops_are_capped(sglang, searxng, web):
    sglang.add(*[judge(False, "Not shown.") for _ in range(3)])
    for _ in range(3):
        sglang.add("s</think>\n" + call("search_urls", query="kestrel"), "a</think>\n\\boxed{1897}")
    summary = await run(fake_settings(sglang, searxng, web, verify=True, max_verify_loops=2))
    verification = summary["verification"]
    assert summary["status"] == "answered" and verification["verdict"] == "unsupported"
    assert verification["loops"] == 2 and len(verification["checks"]) == 3


async def test_unreadable_or_failing_judge_leaves_the_answer_unverified(sglang, searxng, web):
    sglang.add(Reply("I am not sure what you mean.", when=JUDGE))
    sglang.add(*research_script(web))
    summary = await run(fake_settings(sglang, searxng, web, verify=True))
    assert summary["status"] == "answered" and summary["verification"]["verdict"] == "unverified"

    sglang.add(Reply(status=500, error="boom", when=JUDGE), Reply(status=500, error="boom", when=JUDGE))
    sglang.add(*research_script(web))
    summary = await run(fake_settings(sglang, searxng, web, verify=True))
    assert summary["verification"]["verdict"] == "unverified"
    assert "the judge failed" in summary["verification"]["reason"]


async def test_no_verify_skips_the_judge(sglang, searxng, web):
    sglang.add(*research_script(web))
    summary = await run(fake_settings(sglang, searxng, web, verify=False))
    assert summary["verification"]["verdict"] == "unverified"
    assert not [r for r in sglang.requests if r["path"] == "/v1/chat/completions"]

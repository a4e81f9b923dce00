"""verify: an answer found verbatim in a page read is supported at no cost; otherwise a judge gives a
short verdict, and unsupported answers go back to research."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from fathom.app.runs import run_question
from fathom.app.services import build_services
from fathom.errors import ConfigError
from fathom.nodes.verify import verify_mode
from fathom.protocols.judge import BY_EVIDENCE, BY_JUDGE, JUDGE_MAX_TOKENS, evidence_of, normalise, verbatim_support
from fathom.settings import Settings
from tests.conftest import call, fake_settings, research_script
from tests.fakes.sglang import Reply

JUDGE = "You check research answers"
QUESTION = "When did the Kestrel Bridge open?"


def judge(supported: bool, reason: str, urls: list[str] = (), missing: str = "", sources: list[int] = ()) -> Reply:
    body = {"supported": supported, "sources": list(sources), "reason": reason, "missing": missing, "urls": list(urls)}
    return Reply(f"<think>weighing</think>\n```json\n{json.dumps(body)}\n```", when=JUDGE)


async def run(settings, events: list[dict[str, Any]] | None = None):
    async with build_services(settings) as services:
        return await run_question(QUESTION, settings, run_id="v", services=services,
                                  on_event=events.append if events is not None else None)


def judge_requests(sglang) -> list[dict[str, Any]]:
    return [r for r in sglang.requests if r["path"] == "/v1/chat/completions"]


async def test_an_answer_in_a_page_read_is_supported_without_asking_the_judge(sglang, searxng, web):
    sglang.add(*research_script(web))  # reads /article ("opened on 14 June 1897") and answers 1897
    events: list[dict[str, Any]] = []
    summary = await run(fake_settings(sglang, searxng, web, verify="on"), events)

    assert summary["answer"] == "1897" and summary["status"] == "answered"
    verification = summary["verification"]
    assert verification["verdict"] == "supported" and verification["decided_by"] == "verbatim in evidence"
    assert verification["urls"] == [web.url("/article")]  # the page that holds it, not the tram news
    assert not judge_requests(sglang)
    verdicts = [e for e in events if e.get("event") == "verify"]
    assert verdicts[-1]["verdict"] == "supported" and verdicts[-1]["decided_by"] == BY_EVIDENCE


async def test_unsupported_answer_goes_back_then_passes(sglang, searxng, web):
    # The first answer rests on a search snippet only: the judge is asked, and sends it back.
    sglang.add(judge(False, "Only a snippet mentions it.", missing="a page with the opening date"))
    sglang.add("s</think>\n" + call("search_urls", query="kestrel bridge"), "Snippet says 1897.</think>\n\\boxed{1897}")
    sglang.add(*research_script(web))
    summary = await run(fake_settings(sglang, searxng, web, verify=True))  # true is still "on"

    assert summary["answer"] == "1897" and summary["status"] == "answered"
    verification = summary["verification"]
    assert verification["loops"] == 1
    assert verification["checks"][0]["judgement"]["decided_by"] == BY_JUDGE
    assert verification["verdict"] == "supported" and verification["decided_by"] == BY_EVIDENCE
    note_prompt = sglang.prompts[2]
    assert "found it unsupported: Only a snippet mentions it." in note_prompt
    assert "Still missing: a page with the opening date." in note_prompt
    (request,) = judge_requests(sglang)  # the second answer cost no model call
    assert request["json"]["max_tokens"] <= JUDGE_MAX_TOKENS <= 64  # a short verdict, not a paragraph
    assert "Opened in 1897." in request["json"]["messages"][1]["content"]  # the snippet, handed over


async def test_strict_always_asks_the_judge(sglang, searxng, web):
    sglang.add(judge(True, "The heritage page gives 14 June 1897.", ["https://made.up/x"], sources=[2, 9]))
    sglang.add(*research_script(web))
    events: list[dict[str, Any]] = []
    summary = await run(fake_settings(sglang, searxng, web, verify="strict"), events)

    verification = summary["verification"]
    assert verification["verdict"] == "supported" and verification["decided_by"] == "judge"
    assert "14 June 1897" in verification["reason"]
    (request,) = judge_requests(sglang)
    evidence = request["json"]["messages"][1]["content"]
    # Numbered newest first: [1] the tram news, [2] the heritage page, [3] the search results.
    assert evidence.index("[1] query_url") < evidence.index("[2] query_url " + web.url("/article"))
    assert "14 June 1897" in evidence
    # Source 2 is the heritage page; 9 does not exist, and a URL the run never retrieved is dropped.
    assert verification["urls"] == [web.url("/article")]
    assert [e for e in events if e.get("event") == "verify"][-1]["decided_by"] == BY_JUDGE


async def test_verification_loops_are_capped(sglang, searxng, web):
    sglang.add(*[judge(False, "Not shown.") for _ in range(3)])
    for _ in range(3):
        sglang.add("s</think>\n" + call("search_urls", query="kestrel"), "a</think>\n\\boxed{1897}")
    summary = await run(fake_settings(sglang, searxng, web, verify=True, max_verify_loops=2))
    verification = summary["verification"]
    assert summary["status"] == "answered" and verification["verdict"] == "unsupported"
    assert verification["loops"] == 2 and len(verification["checks"]) == 3


async def test_unreadable_or_failing_judge_leaves_the_answer_unverified(sglang, searxng, web):
    script = research_script(web)
    script[-1] = "It opened in the summer.</think>\n\\boxed{summer}"  # on no page: the judge decides
    sglang.add(Reply("I am not sure what you mean.", when=JUDGE))
    sglang.add(*script)
    summary = await run(fake_settings(sglang, searxng, web, verify=True))
    assert summary["status"] == "answered" and summary["verification"]["verdict"] == "unverified"

    sglang.add(Reply(status=500, error="boom", when=JUDGE), Reply(status=500, error="boom", when=JUDGE))
    sglang.add(*script)
    summary = await run(fake_settings(sglang, searxng, web, verify=True))
    assert summary["verification"]["verdict"] == "unverified"
    assert "the judge failed" in summary["verification"]["reason"]


async def test_no_verify_skips_the_judge(sglang, searxng, web):
    sglang.add(*research_script(web))
    summary = await run(fake_settings(sglang, searxng, web, verify="off"))
    assert summary["verification"]["verdict"] == "unverified"
    assert not judge_requests(sglang)


# ---- the verbatim check -----------------------------------------------------------------------------


def page(text: str, url: str = "https://a.org/p", *, ok: bool = True, name: str = "query_url") -> ToolMessage:
    return ToolMessage(text, tool_call_id="c1", name=name, status="success" if ok else "error",
                       artifact={"ok": ok, "args": {"url": url}, "sources": [{"url": url, "title": "P"}]})


def supported(answer: str, *messages: ToolMessage) -> bool:
    return verbatim_support(answer, evidence_of(list(messages))) is not None


def test_normalising_ignores_case_punctuation_spacing_and_digit_groups():
    assert normalise("The  Kestrel-Bridge,\nopened 14 JUNE 1897!") == "the kestrel bridge opened 14 june 1897"
    assert normalise("1,897") == normalise("1897") == normalise("1\u202f897") == "1897"
    assert normalise("Café Zoë") == "cafe zoe"
    assert normalise("3.14") == "3 14" and normalise("1,8970") == "1 8970"  # not a thousands group


def test_only_whole_words_of_a_successful_page_read_count():
    text = "The bridge cost 21,400 pounds and opened on 14 June 1897 (Mill Road)."
    assert supported("21400", page(text)) and supported("£21,400", page(text))
    assert supported("mill road", page(text)) and supported("June 1897", page(text))
    assert not supported("189", page(text))  # part of a number is not the number
    assert not supported("1897", page(text, ok=False))  # a failed read is no evidence
    assert not supported("1897", page(text, name="search_urls"))  # nor is a search snippet
    assert not supported("June 14, 1897", page(text))  # another wording: the judge decides
    assert not supported("no", page("No, it did not."))  # too common to prove anything
    assert not supported("", page(text))


def test_verify_modes_from_settings_and_old_values():
    assert Settings.load(environ={}).verify == "on"
    assert Settings.load(environ={"FATHOM_VERIFY": "false"}).verify == "off"
    assert Settings.load(environ={"FATHOM_VERIFY": "True"}).verify == "on"
    assert Settings.load(environ={"FATHOM_VERIFY": "strict"}).verify == "strict"
    assert Settings.load({"verify": False}, environ={}).verify == "off"
    with pytest.raises(ConfigError, match="verify"):
        Settings.load(environ={"FATHOM_VERIFY": "sometimes"})
    assert [verify_mode(v) for v in (True, False, "strict", "off")] == ["on", "off", "strict", "off"]

"""The paper's baseline agents end to end (``--search-protocol legacy | r1-searcher | zerosearch |
search-o1``): the fake SGLang scripted in each model's own format answers a question through the
real graph, tools, fake search API and fake web; bad output in each format is a note, never a crash;
a crash after a summary resumes without asking the model for it again."""

from __future__ import annotations

import json

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from fathom.app.runs import run_question
from fathom.app.services import build_services
from fathom.errors import ModelError
from fathom.protocols.prompts import baselines as say
from tests.conftest import call, fake_env, fake_settings
from tests.fakes.search_apis import FakeSearxng
from tests.fakes.sglang import Reply
from tests.fakes.sites import FakeSites

Q = "When did the Kestrel Bridge open?"
LAKE = "How deep is Lake Vostrand?"
WIKI_URL = "https://en.wikipedia.org/wiki/Lake_Vostrand"


async def run(settings, question=Q, *, checkpointer=None, run_id="b1"):
    async with build_services(settings) as services:
        return await run_question(question, settings, run_id=run_id, services=services, checkpointer=checkpointer)


def main_prompts(sglang, marker: str) -> list[str]:
    """The prompts of the search turns (not of the side steps), in order."""
    return [p for p in sglang.prompts if marker in p]


async def test_legacy_agent_searches_and_visits_a_page_capped_to_its_context(sglang, searxng, web):
    sglang.add(
        "Search first.</think>\n\n" + call("web_search", query="Kestrel Bridge opening"),
        "Open the history page.</think>\n\n" + call("web_visit", url=web.url("/article")),
        "The page says 14 June 1897.</think>\n\nIt opened in \\boxed{1897}.",
    )
    settings = fake_settings(sglang, searxng, web, search_protocol="legacy", context_tokens=32768)
    summary = await run(settings)
    assert summary["status"] == "answered" and summary["answer"] == "1897" and summary["boxed"]
    assert [c["name"] for c in summary["tool_calls"]] == ["search_urls", "read_page"]
    assert 2_000 <= summary["tool_calls"][1]["arguments"]["max_chars"] < 32768 * 3
    prompts = sglang.prompts
    assert "'web_visit'" in prompts[0] and "query_url" not in prompts[0]
    for before, after in zip(prompts, prompts[1:]):
        assert after.startswith(before)  # append-only: the prefix cache serves every round
    # The page's own text came back, under the call the model wrote.
    assert '<tool_response>{"name": "web_visit"' in prompts[2] and "14 June 1897" in prompts[2]


async def test_r1_searcher_reads_wikipedia_and_the_same_model_sums_it_up(sglang, web):
    results = [
        {"title": "Kestrel Bridge", "url": web.url("/article"), "snippet": "Not on Wikipedia."},
        {"title": "Lake Vostrand - Wikipedia", "url": WIKI_URL, "snippet": "A glacial lake."},
    ]
    with FakeSearxng(results, api_key=None) as searxng, FakeSites() as sites:
        sglang.add(
            Reply("[Extracted Content]: Lake Vostrand is 221 metres deep at its deepest (1911 sounding).",
                  when=r"## Web page"),
            "I need its depth. <|begin_of_query|> Lake Vostrand depth <|end_of_query|>\n\nnever read",
            "The documents say 221 metres.</think>\n<answer>221 metres</answer>",
        )
        settings = fake_settings(sglang, searxng, web, search_protocol="r1-searcher",
                                 allow_hosts=[web.hostport, sites.hostport], wikipedia_url=sites.base("wikipedia"))
        summary = await run(settings, LAKE)
        searched = [r["params"]["q"] for r in searxng.requests if r["params"].get("pageno", "1") == "1"]
    assert summary["status"] == "answered" and summary["answer"] == "221 metres"
    assert searched == ["Lake Vostrand depth site:en.wikipedia.org"]
    (aside,) = [p for p in sglang.prompts if "## Web page" in p]
    assert "measured a depth of 221 metres" in aside and "Lake Vostrand depth" in aside
    first, second = main_prompts(sglang, "<|im_start|>system")
    # The stop string the server cut off is put back; the turn ends there.
    assert second.startswith(first + "I need its depth. <|begin_of_query|> Lake Vostrand depth <|end_of_query|>"
                             "<|im_end|><|im_start|>user\n")
    assert ("<|begin_of_documents|>\nLake Vostrand is 221 metres deep at its deepest (1911 sounding).\n"
            "<|end_of_documents|>") in second and "never read" not in second
    sampling = [r["json"]["sampling_params"] for r in sglang.requests if r["path"] == "/generate"]
    assert sampling[0]["temperature"] == 0.0 and "<|end_of_query|>" in sampling[0]["stop"]
    assert summary["sources"] == [{"url": WIKI_URL, "title": "Lake Vostrand"}]


async def test_zerosearch_reads_snippets_inside_its_own_turn(sglang, searxng, web):
    sglang.add(
        "I need facts.</think>\n<search> Kestrel Bridge opening </search>\n",
        "The snippet says 1897.</think>\n<answer>1897</answer>",
    )
    summary = await run(fake_settings(sglang, searxng, web, search_protocol="zerosearch"))
    assert summary["status"] == "answered" and summary["answer"] == "1897"
    first, second = sglang.prompts
    assert first.startswith("<|im_start|>user\n" + say.ZEROSEARCH_INSTRUCTIONS + " Question: " + Q)
    assert second == (first + "I need facts.</think>\n<search> Kestrel Bridge opening </search><information>\n"
                      "Doc 1: Title: Kestrel Bridge – History\nSnippet: Opened in 1897.\nDoc 2: Title: Kestrel Bridge news\n"
                      "Snippet: Tram news.\n</information>\n\n<think>")
    sampling = sglang.requests[0]["json"]["sampling_params"]
    assert sampling["temperature"] == 0.7 and "top_p" not in sampling and "</search>" in sampling["stop"]
    assert web.hits.get("/article", 0) == 0  # ZeroSearch reads snippets only


async def test_search_o1_reasons_in_documents_and_answers_in_answer_tags(sglang, searxng, web):
    sglang.add(
        Reply("<think>The page gives the date.</think>\n<information>The bridge opened on 14 June 1897."
              "</information>", when=r"\*\*Current search query\*\*"),
        "I should search.<|begin_search_query|>Kestrel Bridge opening<|end_search_query|>ignored",
        "So the year is 1897.</think>\n<answer>1897</answer>",
    )
    summary = await run(fake_settings(sglang, searxng, web, search_protocol="search-o1"))
    # Upstream's harness looked for \boxed{} here and scored this answer empty (bug E3).
    assert summary["status"] == "answered" and summary["answer"] == "1897" and summary["boxed"]
    (aside,) = [p for p in sglang.prompts if "**Current search query**" in p]
    assert "14 June 1897" in aside and "I should search." in aside
    first, second = main_prompts(sglang, "<|im_start|>system")
    assert second.startswith(first + "I should search.<|begin_search_query|>Kestrel Bridge opening<|end_search_query|>")
    assert "<|begin_search_result|>The bridge opened on 14 June 1897.<|end_search_result|>" in second
    assert "City council" not in aside  # only the first page with text is used
    sampling = sglang.requests[0]["json"]["sampling_params"]
    assert sampling["top_p"] == 0.8 and "</answer>" in sampling["stop"]


@pytest.mark.parametrize(("protocol", "open_tag", "close_tag"), [
    ("r1-searcher", "<|begin_of_query|>", "<|end_of_query|>"),
    ("zerosearch", "<search>", "</search>"),
    ("search-o1", "<|begin_search_query|>", "<|end_search_query|>"),
])
async def test_malformed_output_in_each_format_is_a_note_never_a_crash(sglang, searxng, web, protocol, open_tag, close_tag):
    sglang.add(
        Reply("[Extracted Content]: None", when=r"## Web page"),
        Reply("<information>Nothing useful.</information>", when=r"\*\*Current search query\*\*"),
        f"Let me search {open_tag} half a query",
        f"{open_tag}   {close_tag}",
        "",
        "I am rambling and neither search nor answer.",
        f"{open_tag}Kestrel Bridge{close_tag}",
        "Enough.</think>\n<answer>1897</answer>",
    )
    summary = await run(fake_settings(sglang, searxng, web, search_protocol=protocol))
    assert summary["status"] == "answered" and summary["answer"] == "1897"
    last = [p for p in sglang.prompts if "## Web page" not in p and "**Current search query**" not in p][-1]
    for note in (say.unclosed_query_note(open_tag, close_tag), say.empty_query_note(open_tag, close_tag),
                 "Your last turn was empty", say.no_action_note(open_tag, close_tag)):
        assert note in last


async def test_a_run_resumed_after_a_crash_renders_the_stored_summary_without_asking_again(sglang, searxng, web):
    aside = Reply("<information>It opened on 14 June 1897.</information>", when=r"\*\*Current search query\*\*")
    sglang.add(
        aside, aside,
        "<|begin_search_query|>Kestrel Bridge opening<|end_search_query|>",
        "Check the year once more.<|begin_search_query|>Kestrel Bridge 1897<|end_search_query|>",
        Reply(status=400, error="injected failure"),
    )
    settings = fake_settings(sglang, searxng, web, search_protocol="search-o1")
    saver = InMemorySaver()
    with pytest.raises(ModelError):
        await run(settings, checkpointer=saver, run_id="crash")
    failed = sglang.prompts[-1]
    assert "<|im_start|>system" in failed and sum("**Current search query**" in p for p in sglang.prompts) == 2
    # The failed turn's own side step (on the second search) runs again: its result was never
    # stored. The first search's, stored on the second turn, is rendered as it was, not asked for.
    sglang.add("Both agree.</think>\n<answer>1897</answer>", aside)
    summary = await run(settings, None, checkpointer=saver, run_id="crash")
    assert summary["status"] == "answered" and summary["answer"] == "1897"
    resumed = [p for p in sglang.prompts if "<|im_start|>system" in p][-1]
    assert resumed == failed
    assert sum("**Current search query**" in p for p in sglang.prompts) == 3


def test_fathom_eval_runs_a_baseline_with_a_prompt_file_and_scores_its_answer_tags(cli, sglang, searxng, web, tmp_path):
    rows = [{"id": "q1", "question": Q, "answer": "1897"}, {"id": "q2", "question": "Kestrel Bridge year?", "answer": "1897"}]
    data = tmp_path / "bridge.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    system = tmp_path / "o1.txt"
    system.write_bytes(b"\nMy own Search-o1 text: search with <|begin_search_query|>, answer in <answer>.\n    ")
    for _ in rows:
        sglang.add(
            Reply("<information>It opened in 1897.</information>", when=r"\*\*Current search query\*\*"),
            "<|begin_search_query|>Kestrel Bridge opening<|end_search_query|>",
            "</think><answer>1897</answer>",
        )
    env = {**fake_env(sglang, searxng, web), "FATHOM_SEARCH_PROTOCOL": "search-o1"}
    result = cli("eval", "run", str(data), "--judge", "exact", "--concurrency", "1", "--prompt", str(system),
                 "--json", "-q", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["verdicts"]["correct"] == 2 and summary["metrics"]["accuracy"] == 1.0
    assert sglang.prompts[0].startswith("<|im_start|>system\n" + system.read_text() + "<|im_end|>\n<|im_start|>user\n")

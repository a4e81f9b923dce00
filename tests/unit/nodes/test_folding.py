"""folding: old tool results become digests in state, never in the transcript itself."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import tool_call

from fathom.nodes.budget import plan_turn, prompt_estimate, research_limit
from fathom.nodes.folding import FOLD_AT, digest_of, folded_view, key_lines, plan_fold
from fathom.ports import ResearchConfig
from fathom.protocols.base import estimate_tokens
from fathom.protocols.fathom import FathomPromptRenderer
from fathom.protocols.prompts import DEFAULT_SEARCH_PROMPT
from fathom.protocols.prompts.search import FOLDED_LABEL
from fathom.tools.evidence import EvidenceExtractor
from fathom.tools.extract import Document

QUESTION = "When did the Kestrel Bridge open to traffic?"
ANSWER = "The Kestrel Bridge opened to traffic on 14 June 1897, after four years of building."


class Estimator:
    name = "fathom"

    def estimate_tokens(self, text: str) -> int:
        return estimate_tokens(text)


def page_text(n: int, *, answer: bool = False) -> str:
    paragraphs = [
        f"Record {n}.{i} on the masonry of the Kestrel Bridge notes detail {n * 31 + i} for the district archive. " * 3
        for i in range(8)
    ]
    if answer:
        paragraphs.insert(4, ANSWER)
    return "\n\n".join(paragraphs)


def read_result(n: int, call_id: str, index: int, *, answer: bool = False, goal: str = "masonry") -> ToolMessage:
    url = f"https://archive.example/p/{n}"
    doc = Document(url=url, title=f"Archive page {n}", text=page_text(n, answer=answer))
    evidence = EvidenceExtractor(max_chars=1500).extractive(doc, goal, url=url)
    args = {"url": url, "goal": goal}
    return ToolMessage(
        content=evidence,
        tool_call_id=call_id,
        name="query_url",
        id=f"tool-{call_id}",
        artifact={"index": index, "raw": json.dumps({"name": "query_url", "arguments": args}), "args": args,
                  "ok": True, "sources": [{"url": url, "title": f"Archive page {n}"}]},
    )


def research(rounds: int, reads: int = 3) -> list[AnyMessage]:
    """A transcript of ``rounds`` model turns, each reading ``reads`` pages (page 0 has the answer)."""
    messages: list[AnyMessage] = [HumanMessage(QUESTION, id="q")]
    for r in range(rounds):
        calls = [tool_call(name="query_url", args={"url": f"https://archive.example/p/{r * reads + k}", "goal": "g"},
                           id=f"r{r}-{k}") for k in range(reads)]
        messages.append(AIMessage(f"Turn {r}: reading.</think>", tool_calls=calls, id=f"ai-{r}"))
        # results land in any order; reading order is by call index
        for k in reversed(range(reads)):
            n = r * reads + k
            goal = "When did the Kestrel Bridge open?" if n == 0 else "masonry"
            messages.append(read_result(n, f"r{r}-{k}", k, answer=n == 0, goal=goal))
    return messages


def config(**kw) -> ResearchConfig:
    return ResearchConfig(**{"context_tokens": 8192, "answer_reserve_tokens": 1000, "max_new_tokens_per_turn": 400, **kw})


def fold_of(messages, digests=None, *, prompt_tokens=None, settings=None):
    settings = settings or config()
    return plan_fold(
        messages=messages,
        digests=digests or {},
        question=QUESTION,
        prompt_tokens=prompt_tokens if prompt_tokens is not None else int(research_limit(settings) * FOLD_AT) + 1,
        rounds=sum(isinstance(m, AIMessage) for m in messages),
        settings=settings,
        protocol=Estimator(),
    )


def test_a_page_digest_keeps_title_and_the_lines_that_answer_the_question():
    result = read_result(0, "c0", 0, answer=True, goal="When did the Kestrel Bridge open?")
    assert "14 June 1897" in str(result.content) and len(str(result.content)) > 1000
    digest = digest_of(result, QUESTION)
    assert digest.startswith(FOLDED_LABEL + " Archive page 0")
    assert ANSWER in digest
    assert "useful information in" not in digest  # the evidence header is layout, not evidence
    assert len(digest) < len(str(result.content)) / 3


def test_a_redirected_page_digest_names_where_it_was_read():
    result = read_result(1, "c1", 0)
    result.artifact["sources"] = [{"url": "https://archive.example/moved/1", "title": "Moved"}]
    assert "<https://archive.example/moved/1>" in digest_of(result, QUESTION)


def test_a_search_digest_lists_urls_and_titles_only():
    hits = [{"url": f"https://s.example/{i}", "title": f"Hit {i}"} for i in range(3)]
    result = ToolMessage(content="### 1. Hit 0\n**URL**: …\n\n**Snippet**: long snippet text " * 3, tool_call_id="s",
                         name="search_urls", artifact={"index": 0, "args": {"query": "q"}, "sources": hits})
    assert digest_of(result, QUESTION) == "\n".join([FOLDED_LABEL] + [f"- https://s.example/{i} Hit {i}" for i in range(3)])


def test_key_lines_skip_markers_and_fall_back_to_the_first_piece():
    text = "The useful information in https://x for goal “y”:\n\nEvidence (extracted passages):\n[…]\n\nAlpha beta.\n\nGamma delta."
    assert key_lines(text, "gamma", skip="https://x") == ["Gamma delta."]
    assert key_lines(text, "nothing matches", skip="https://x") == ["Alpha beta."]


def test_no_fold_below_the_threshold_or_with_the_answer_strategy():
    messages = research(4)
    threshold = int(research_limit(config()) * FOLD_AT)
    assert fold_of(messages, prompt_tokens=threshold - 1) is None
    assert fold_of(messages, settings=config(context_strategy="answer")) is None
    assert fold_of(messages) is not None


def test_a_fold_takes_the_oldest_half_or_more_of_what_the_model_has_read():
    messages = research(4)
    fold = fold_of(messages)
    ids = fold.record["message_ids"]
    read = [m.id for m in messages[:-3] if isinstance(m, ToolMessage)]  # before the latest turn
    latest = [m.id for m in messages[-3:]]
    assert len(ids) >= len(read) // 2
    assert ids == [f"tool-r{r}-{k}" for r in range(len(ids) // 3 + 1) for k in range(3)][: len(ids)]  # reading order
    assert not set(ids) & set(latest)  # results the model has not read yet stay whole
    assert set(fold.digests) == set(ids)
    assert fold.record["tokens_before"] - fold.record["tokens_after"] == fold.saved_tokens > 0
    saved = sum(estimate_tokens(str(m.content)) - estimate_tokens(fold.digests[m.id])
                for m in messages if m.id in fold.digests)
    assert fold.saved_tokens == saved


def test_the_view_replaces_folded_results_and_leaves_the_transcript_alone():
    messages = research(3)
    before = [m.model_dump() for m in messages]
    fold = fold_of(messages)
    view = folded_view(messages, fold.digests)
    assert [m.model_dump() for m in messages] == before
    assert [m.id for m in view] == [m.id for m in messages]
    for original, shown in zip(messages, view):
        if original.id in fold.digests:
            assert shown.content == fold.digests[original.id]
        else:
            assert shown is original  # model turns and unfolded results untouched


def test_the_prompt_is_append_only_between_folds_and_the_answer_survives():
    renderer = FathomPromptRenderer(DEFAULT_SEARCH_PROMPT)
    messages = research(3)
    digests = dict(fold_of(messages).digests)
    prompt = renderer.render(folded_view(messages, digests))
    assert ANSWER in prompt
    longer = research(5)
    later = renderer.render(folded_view(longer, digests))
    assert later.startswith(prompt.removesuffix("<|im_start|>assistant\n<think>"))
    # the next fold only adds digests; the earlier ones stay as they were
    second = fold_of(longer, digests)
    assert not set(second.digests) & set(digests)
    digests.update(second.digests)
    assert ANSWER in renderer.render(folded_view(longer, digests))


def test_after_a_fold_the_budget_counts_the_saved_tokens():
    settings = config()
    messages = research(4)
    known = research_limit(settings) - 10  # the server's count of the unfolded prompt
    before, reason = plan_turn(rounds=4, context_tokens=known + 500, messages=messages, settings=settings,
                               protocol=Estimator(), elapsed_s=0)
    assert reason is not None  # unfolded, the next turn would have to answer
    fold = fold_of(messages, prompt_tokens=prompt_estimate(known, messages, Estimator()))
    budget, reason = plan_turn(rounds=4, context_tokens=known - fold.saved_tokens, messages=folded_view(messages, fold.digests),
                               settings=settings, protocol=Estimator(), elapsed_s=0)
    assert reason is None and not budget.force_answer
    assert fold_of(messages, fold.digests, prompt_tokens=fold.record["tokens_after"]) is None


def test_the_view_is_made_once_and_follows_changes():
    """Asking for the view again (three times a step, and every later step) hands out the
    folded results made the first time, while the transcript still says the same."""
    messages = research(3)
    fold = fold_of(messages)
    first = folded_view(messages, fold.digests)
    again = folded_view([*messages, HumanMessage("note", id="n")], dict(fold.digests))
    assert all(a is b for a, b in zip(first, again))
    folded = next(m for m in messages if m.id in fold.digests)
    folded.artifact = {**folded.artifact, "ok": False}  # a field replaced: a new copy shows it
    folded.additional_kwargs["seen"] = True  # changed in place: the copy shares it
    shown = next(m for m in folded_view(messages, fold.digests) if m.id == folded.id)
    assert shown.model_dump() == folded.model_copy(update={"content": fold.digests[folded.id]}).model_dump()
    assert shown.artifact["ok"] is False and shown.additional_kwargs == {"seen": True}

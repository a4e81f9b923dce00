"""Fathom-Synthesizer as a pure function of its prompt, for the fake SGLang server's ``fallback``.

Asked to start (the prompt ends with an open assistant turn) it writes a plan; asked to continue
after ``</think>`` it writes a report citing the fake web's pages, one invented URL included.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.fakes.sglang import Reply

PLAN = "## Plan\nSQ1: when did it open? -> S1 History\n| Section | Item | Content | Confidence |"


def report_text(web) -> str:
    article = web.url("/article")
    return (
        "# Executive Summary\n"
        f"- The Kestrel Bridge opened on 14 June 1897. [{article}]\n"
        f"- Trams crossed it later. [{web.url('/news/tram')}#section-2]\n"
        "- It was the longest bridge in the world. [https://invented.example/fake-fact]\n\n"
        "## S1 History\n"
        f"Construction began in 1894 [{article}/].\n\n"
        "## Sources used\nhttps://invented.example/fake-fact\n"
    )


def synthesizer(web, *, report: str | None = None, cut_first: bool = False) -> Callable[[str], Reply]:
    """Fathom-Synthesizer as a function of its prompt: a plan when asked to start, then the report."""
    state = {"writes": 0}

    def reply(prompt: str) -> Reply:
        if prompt.endswith("<|im_start|>assistant\n"):
            return Reply(f"<think>\n{PLAN}\n</think>\nnot part of the plan")
        state["writes"] += 1
        text = report or report_text(web)
        if cut_first and state["writes"] == 1:
            return Reply(text[:60], finish_reason="length")
        return Reply(text[60:] if cut_first else text)

    return reply

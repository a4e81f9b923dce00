"""plan: Fathom-Synthesizer writes its section plan and evidence map (the ``<think>`` part).

The synthesizer prompt is rebuilt from state the same way here and in write, so write's request
extends plan's byte for byte and the server serves the shared prefix from its cache.
"""

from __future__ import annotations

from typing import Any

from fathom.graph.state import ResearchState
from fathom.nodes.progress import emit
from fathom.ports import Services
from fathom.protocols.synthesizer import (
    SYNTH_USER_LEAD_IN,
    fit_trace,
    format_trace,
    render_synth_prompt,
    split_plan_report,
    synth_system_prompt,
    tool_call_list,
    trace_budget,
)

THINK_END = "</think>"


async def synth_context(services: Services) -> int:
    """The synthesizer's context window: the configured size, capped by what the server reports."""
    configured = services.config.synth_context_tokens
    assert services.synth is not None
    served = await services.synth.context_length()
    return min(configured, served) if served else configured


async def synth_prompt(state: ResearchState, services: Services, context_tokens: int) -> str:
    """The synthesizer's raw prompt: system, question, the trace fitted to ``context_tokens``
    (see :func:`synth_context`), tool calls."""
    settings = services.config
    messages = list(state.get("messages") or [])
    question = state["question"]
    system = synth_system_prompt(
        settings.synth_prompt or None, language=state.get("language") or settings.language
    )
    calls = tool_call_list(messages)
    budget = trace_budget(
        context_tokens=context_tokens,
        max_new_tokens=settings.synth_max_new_tokens,
        system=system,
        question=question,
        tool_calls=calls,
    )
    trace = format_trace(fit_trace(messages, max_tokens=max(budget, 0)))
    return render_synth_prompt(system, question, trace, calls, lead_in=settings.synth_lead_in or SYNTH_USER_LEAD_IN)


async def plan(state: ResearchState, services: Services) -> dict[str, Any]:
    """Generate the report plan: the synthesizer's output up to ``</think>``."""
    settings = services.config
    assert services.synth is not None
    emit("plan_start")
    prompt = await synth_prompt(state, services, await synth_context(services))
    generation = await services.synth.generate(
        prompt,
        max_new_tokens=settings.synth_max_new_tokens,
        temperature=settings.synth_temperature,
        repetition_penalty=settings.repetition_penalty,
        stop=[THINK_END],
    )
    text, _ = split_plan_report(generation.text + THINK_END)
    emit("plan", plan=text, cut=generation.finish_reason == "length")
    return {
        "plan": text,
        "plan_raw": generation.text,
        "usage": {
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
            "cached_tokens": generation.cached_tokens,
        },
    }


def route_after_plan(state: ResearchState) -> str:
    return "review" if state.get("review_plan") else "write"

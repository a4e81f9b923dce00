"""write: Fathom-Synthesizer writes the report after its plan; citations are checked mechanically.

The request is the plan's prompt plus the plan and ``</think>``, so the server reuses the cached
prefix. A report cut off by ``max_new_tokens`` is continued (up to ``synth_continuations`` times)
instead of being returned truncated. Only URLs retrieved in this run may stay cited.
"""

from __future__ import annotations

from typing import Any

from fathom.graph.state import ResearchState
from fathom.models.base import ContextLengthError
from fathom.nodes.citations import check_citations, retrieved_sources
from fathom.nodes.plan import THINK_END, synth_context, synth_prompt
from fathom.nodes.progress import emit
from fathom.ports import Services
from fathom.protocols.synthesizer import split_plan_report, strip_leaked_think

MIN_CONTINUATION = 256  # tokens: less room than this is not worth another request


def plan_text_for_prompt(state: ResearchState) -> str:
    """The plan as the model generated it, or, once a human edited it, the edited plan."""
    raw = state.get("plan_raw") or ""
    plan = state.get("plan") or ""
    generated, _ = split_plan_report(raw + THINK_END)
    return raw if generated.strip() == plan.strip() else f"<think>\n{plan}\n"


async def write(state: ResearchState, services: Services) -> dict[str, Any]:
    """Generate the report and check its citations against the URLs this run retrieved."""
    settings = services.config
    assert services.synth is not None
    context = await synth_context(services)
    head = await synth_prompt(state, services, context) + plan_text_for_prompt(state) + THINK_END
    emit("write_start")
    report, usage, continued = "", {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}, 0
    max_new = settings.synth_max_new_tokens
    for attempt in range(1 + settings.synth_continuations):
        try:
            generation = await services.synth.generate(
                head + report,
                max_new_tokens=max_new,
                temperature=settings.synth_temperature,
                repetition_penalty=settings.repetition_penalty,
            )
        except ContextLengthError:
            if attempt == 0:
                raise
            break  # the continuation no longer fits: keep what was written
        report += generation.text
        for key in usage:
            usage[key] += getattr(generation, key)
        room = context - generation.prompt_tokens - generation.completion_tokens - 64
        if generation.finish_reason != "length" or room < MIN_CONTINUATION:
            break
        continued += 1
        max_new = min(settings.synth_max_new_tokens, room)
        emit("write_continue", continuation=continued)
    text = strip_leaked_think(report)
    if not text.strip():
        emit("write", ok=False)
        return {"report_status": "failed", "error": "the synthesizer wrote an empty report", "usage": usage}
    checked = check_citations(text, retrieved_sources(list(state.get("messages") or [])))
    citations = {**checked.as_dict(), "continuations": continued}
    emit("write", ok=True, kept=len(checked.sources), removed=len(checked.removed),
         unsourced=citations.get("unsourced", 0))
    return {"report": checked.text, "citations": citations, "report_status": "written", "usage": usage}

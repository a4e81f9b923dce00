"""plan: the synthesizer's prompt is built from the run's config (system prompt and lead-in)."""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from fathom.nodes.plan import synth_prompt
from fathom.ports import ResearchConfig, Services
from fathom.protocols.synthesizer import SYNTH_USER_LEAD_IN

STATE = {"question": "Q?", "messages": [HumanMessage("Q?")]}


def services(**config: object) -> Services:
    return Services(config=ResearchConfig(**config), protocol=None, tools=None)  # type: ignore[arg-type]


async def test_the_user_turn_opens_with_the_configured_lead_in() -> None:
    prompt = await synth_prompt(STATE, services(synth_lead_in="Trained lead-in."), 40960)
    assert "<|im_start|>user\nTrained lead-in.\n\nQuestion:\nQ?\n\n" in prompt


async def test_ours_is_used_when_none_is_configured() -> None:
    prompt = await synth_prompt(STATE, services(), 40960)
    assert f"<|im_start|>user\n{SYNTH_USER_LEAD_IN}\n\nQuestion:\nQ?\n\n" in prompt

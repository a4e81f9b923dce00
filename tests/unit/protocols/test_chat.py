"""The tool-calling protocol: over an OpenAI-compatible server and over an embedder's chat model."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from fathom.models.chat import ChatClient
from fathom.protocols.base import TurnBudget
from fathom.protocols.chat import ChatToolsProtocol, to_openai_messages
from tests.fakes.sglang import FakeSGLang


class ToolCallingFake(GenericFakeChatModel):
    """A scripted langchain-core chat model that accepts ``bind_tools`` like a real one."""

    bound_tools: list[Any] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFake:
        self.bound_tools.append(tools)
        return self


async def test_embedder_chat_model_calls_are_validated():
    model = ToolCallingFake(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {"name": "search_urls", "args": {"query": "sugeno"}, "id": "c1"},
                        {"name": "shell", "args": {"cmd": "ls"}, "id": "c2"},
                    ],
                ),
                AIMessage(content="It was \\boxed{Michio Sugeno}."),
            ]
        )
    )
    protocol = ChatToolsProtocol(model, "system")
    first = await protocol.turn([HumanMessage("q")], TurnBudget(256))
    assert [c["name"] for c in first.message.tool_calls] == ["search_urls"]
    assert "unknown tool 'shell'" in first.message.invalid_tool_calls[0]["error"]
    assert model.bound_tools and model.bound_tools[0][0]["function"]["name"] == "search_urls"
    second = await protocol.turn([HumanMessage("q"), first.message], TurnBudget(256))
    assert second.answer == "Michio Sugeno" and second.boxed


async def test_openai_compatible_server_tool_calls_round_trip():
    script = [
        '<tool_call>\n{"name": "search_urls", "arguments": {"query": "rosenblatt 2010"}}\n</tool_call>',
        "The award went to \\boxed{Michio Sugeno}.",
    ]
    with FakeSGLang(script) as fake:
        client = ChatClient.from_spec(fake.url + "/v1", api_key=None)
        protocol = ChatToolsProtocol(client, "system")
        try:
            first = await protocol.turn([HumanMessage("q")], TurnBudget(256))
            [call] = first.message.tool_calls
            assert call["name"] == "search_urls" and call["args"] == {"query": "rosenblatt 2010"}
            assert first.usage["prompt_tokens"] > 0
            result = ToolMessage("### 1. Sugeno", tool_call_id=call["id"], name="search_urls")
            second = await protocol.turn([HumanMessage("q"), first.message, result], TurnBudget(256))
        finally:
            await client.aclose()
        assert second.answer == "Michio Sugeno"
        sent = fake.requests[-1]["json"]
        assert sent["messages"][0] == {"role": "system", "content": "system"}
        assert sent["messages"][-1]["role"] == "tool" and sent["messages"][-1]["tool_call_id"] == call["id"]
        assert [t["function"]["name"] for t in sent["tools"]] == ["search_urls", "query_url"]


def test_invalid_calls_keep_a_matching_assistant_call():
    ai = AIMessage(
        content="",
        invalid_tool_calls=[{"type": "invalid_tool_call", "name": "x", "args": "{bad", "id": "c9", "error": "bad"}],
    )
    reply = ToolMessage("[error] bad", tool_call_id="c9", status="error")
    converted = to_openai_messages([HumanMessage("q"), ai, reply])
    assert converted[1]["tool_calls"][0]["id"] == "c9"
    assert converted[2] == {"role": "tool", "tool_call_id": "c9", "content": "error: [error] bad"}


async def test_a_forced_turn_that_calls_tools_is_refused_never_answered():
    from fathom.protocols.base import refused_call_responses
    from fathom.protocols.prompts.search import FORCED_CALL_ERROR

    written = '<tool_call>\n{"name": "search_urls", "arguments": {"query": "more"}}\n</tool_call> maybe 1897'
    model = ToolCallingFake(
        messages=iter(
            [
                AIMessage(content="", tool_calls=[{"name": "search_urls", "args": {"query": "more"}, "id": "c1"}]),
                AIMessage(content=written),
                AIMessage(content=written + " so \\boxed{1897}"),
            ]
        )
    )
    protocol = ChatToolsProtocol(model, "system")
    forced = TurnBudget(256, force_answer=True)
    structured = await protocol.turn([HumanMessage("q")], forced)
    as_text = await protocol.turn([HumanMessage("q")], forced)
    for turn in (structured, as_text):
        assert turn.answer is None and not turn.message.tool_calls and not turn.notes
        [refused] = turn.message.invalid_tool_calls
        assert refused["error"] == FORCED_CALL_ERROR
        [response] = refused_call_responses(turn.message)
        assert response.status == "error" and FORCED_CALL_ERROR in response.content
    # every tool reply keeps a matching assistant call in the chat transcript
    [assistant] = to_openai_messages([as_text.message])
    assert assistant["tool_calls"][0]["id"] == refused["id"]
    boxed = await protocol.turn([HumanMessage("q")], forced)
    assert boxed.answer == "1897" and boxed.boxed and not boxed.message.invalid_tool_calls

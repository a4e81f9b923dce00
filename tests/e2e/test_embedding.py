"""Embedding the research graph as a node of an application's own graph."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from fathom import FathomContext, build_graph
from tests.conftest import fake_settings, research_script


class AppState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]  # the app's own chat, untouched by research
    question: str
    answer: str
    sources: list[dict]
    log: Annotated[list[str], operator.add]


def intake(state: AppState) -> dict:
    return {"question": state["messages"][-1].content, "log": ["intake"]}


def reply(state: AppState) -> dict:
    return {"log": [f"reply:{state['answer']}:{len(state['sources'])}"]}


def app_graph(checkpointer):
    builder = StateGraph(AppState, context_schema=FathomContext)
    builder.add_node("intake", intake)
    builder.add_node("research", build_graph())
    builder.add_node("reply", reply)
    builder.add_edge(START, "intake")
    builder.add_edge("intake", "research")
    builder.add_edge("research", "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=checkpointer)


async def test_research_graph_runs_as_a_subgraph_under_the_parents_checkpointer(sglang, searxng, web):
    sglang.add(*research_script(web))
    saver = InMemorySaver()
    app = app_graph(saver)
    config = {"configurable": {"thread_id": "app-1"}}
    context = FathomContext(settings=fake_settings(sglang, searxng, web))
    result = await app.ainvoke({"messages": [HumanMessage("When did the Kestrel Bridge open?")]}, config, context=context)

    assert result["answer"] == "1897"
    assert {s["url"] for s in result["sources"]} == {web.url("/article"), web.url("/news/tram")}
    assert result["log"] == ["intake", "reply:1897:2"]
    # The app's own messages were not mixed with the research transcript.
    assert [m.content for m in result["messages"]] == ["When did the Kestrel Bridge open?"]
    # The parent's checkpointer holds the research steps, under the subgraph's namespace.
    namespaces = {c.config["configurable"]["checkpoint_ns"] for c in saver.list(None)}
    assert any(ns.startswith("research:") for ns in namespaces)


async def test_settings_can_come_from_the_environment(sglang, searxng, web, monkeypatch):
    """With no context (as in Studio), nodes read FATHOM_* variables."""
    sglang.add(*research_script(web))
    monkeypatch.setenv("FATHOM_SEARCH_MODEL_URL", sglang.url)
    monkeypatch.setenv("FATHOM_SEARCH_BACKEND", "searxng")
    monkeypatch.setenv("SEARXNG_URL", searxng.url)
    monkeypatch.setenv("FATHOM_ALLOW_HOSTS", web.hostport)
    result = await build_graph().ainvoke({"question": "When did the Kestrel Bridge open?"})
    assert result["answer"] == "1897" and result["status"] == "answered"
    assert "messages" not in result  # the output schema: answer, sources, status, …

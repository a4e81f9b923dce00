"""The judge an eval uses, built from settings: its chat client and its verdict cache in SQL.

:func:`eval_judge` is what ``fathom eval run`` and ``fathom eval rejudge`` open: the judge of
the kind asked for (:func:`~fathom.eval.judges.judge_for`), whose LLM verdicts are kept in the
run database (:class:`~fathom.store.judgements.JudgementStore`), so judging the same answers
again with the same model and prompt asks no model. It lives in the eval layer because the
judges do: the app layer below builds the chat client (:func:`fathom.app.services.judge_chat_client`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fathom.app.services import judge_chat_client
from fathom.eval.judges import Judge, Judgement, LLMJudge, judge_for
from fathom.settings import Settings
from fathom.store import Database
from fathom.store.judgements import JudgementStore

__all__ = ["eval_judge"]


@asynccontextmanager
async def eval_judge(
    settings: Settings,
    kind: str,
    *,
    dataset: str | None = None,
    judge_model: str | None = None,
    prompt: str | None = None,
    database: Database | None = None,
) -> AsyncIterator[Judge]:
    """The judge of ``kind`` for ``dataset`` (``auto`` decides by its name), open until the block ends.

    An LLM judge asks ``judge_model`` (``openai:MODEL`` or an OpenAI-compatible base URL; default
    the query LLM) with ``prompt`` (a grader text; default ours), and keeps its verdicts in
    ``database`` (left open), else in the database of ``settings.db_url`` (opened only for an
    LLM judge, closed on the way out). Other judges ask no model and touch no database.

    Raises:
        ConfigError: an unknown kind, an LLM judge without a model, or a grader text that does
            not fit (see :func:`~fathom.eval.judges.judge_for`).
    """
    async with AsyncExitStack() as stack:
        chat = judge_chat_client(settings, judge_model) if kind.strip().lower() in ("auto", "llm") else None
        if chat is not None:
            stack.push_async_callback(chat.aclose)
        if database is None and chat is not None:
            database = Database(settings.db_url)  # connects on first use: never for exact, mcq…
            stack.push_async_callback(database.aclose)
        cache = JudgementStore(database, Judgement) if database is not None else None
        judge = judge_for(kind, dataset=dataset, chat=chat, prompt=prompt, cache=cache)
        if chat is not None and not isinstance(judge, LLMJudge):  # auto chose a judge without a model
            await stack.aclose()
        yield judge

"""The judge an eval opens from settings: its verdicts kept in the run database, clients closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fathom.errors import ConfigError
from fathom.eval.judges import ExactJudge, LLMJudge, MCQJudge
from fathom.eval.judging import eval_judge
from fathom.settings import Settings
from fathom.store.judgements import JudgementStore, StoredJudgement
from tests.fakes.sglang import FakeSGLang

Q = "Who proposed the fuzzy integral?"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load({"db_url": f"sqlite:///{tmp_path}/runs.db"}, environ={})


async def test_an_llm_judge_keeps_its_verdicts_in_the_run_database(settings: Settings) -> None:
    with FakeSGLang(["CORRECT\nIt names Sugeno."], model_path="grader") as fake:
        async with eval_judge(settings, "llm", dataset="trivia", judge_model=fake.url + "/v1") as judge:
            assert isinstance(judge, LLMJudge) and isinstance(judge.cache, JudgementStore)
            first = await judge(Q, "Michio Sugeno", "Sugeno")
        async with eval_judge(settings, "llm", dataset="trivia", judge_model=fake.url + "/v1") as judge:
            assert await judge(Q, "Michio Sugeno", "Sugeno") == first  # the script is spent: from SQL
            assert isinstance(judge.cache, JudgementStore)
            stored = JudgementStore(judge.cache.db, StoredJudgement)
            assert await stored.count() == 1
    assert first.verdict == "correct" and first.judge.startswith("llm:grader@")


async def test_auto_without_a_model_for_its_data_set_asks_none(settings: Settings) -> None:
    with FakeSGLang(model_path="grader") as fake:
        async with eval_judge(settings, "auto", dataset="gpqa-diamond", judge_model=fake.url + "/v1") as judge:
            assert isinstance(judge, MCQJudge)
            assert (await judge("Which? (A) x (B) y", "B", "(B) y")).verdict == "correct"
        assert fake.requests == []
    async with eval_judge(settings, "auto", dataset="trivia") as judge:  # no judge model, no query LLM
        assert isinstance(judge, ExactJudge)
    assert not Path(settings.db_url.removeprefix("sqlite:///")).exists()  # no database was opened


async def test_a_grader_text_for_a_judge_that_asks_no_model_is_refused(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="llm judge"):
        async with eval_judge(settings, "exact", prompt="{question} {target} {predicted_answer}"):
            pass

"""Judges on realistic answers, and the LLM grader against the fake SGLang server over loopback."""

from __future__ import annotations

import hashlib

import pytest

from fathom.errors import ConfigError
from fathom.eval.judges import (
    ExactJudge,
    F1Judge,
    Judgement,
    LLMJudge,
    MCQJudge,
    NumericJudge,
    cache_key,
    check_grader,
    judge_for,
    normalize,
    option_letter,
    parse_number,
    parse_verdict,
)
from fathom.models.chat import ChatClient
from fathom.protocols.prompts.eval import EVAL_JUDGE_SYSTEM_PROMPT, EVAL_JUDGE_USER_TEMPLATE
from fathom.retry import RetryPolicy
from tests.fakes.server import free_port
from tests.fakes.sglang import FakeSGLang, Reply


async def no_sleep(_seconds: float) -> None:
    return None


FAST = RetryPolicy(attempts=5, base_delay_s=0.001, sleep=no_sleep)
Q = "Who received the IEEE Frank Rosenblatt Award in 2010?"


async def verdict(judge, gold: str, answer: str | None, question: str = Q) -> str:
    return (await judge(question, gold, answer)).verdict


# ---- normalising and exact ------------------------------------------------------------------


def test_normalize():
    assert normalize("  The Eiffel Tower! ") == "eiffel tower"
    assert normalize("Michio Sugeno.") == normalize("michio sugeno")
    assert normalize("Café Müller") == "cafe muller"
    assert normalize("\\boxed{20C}") == "20c"
    assert normalize("An apple, a day") == "apple day"
    assert normalize("ＡＢＣ") == "abc"  # NFKD folds full-width letters


async def test_exact_judge():
    judge = ExactJudge()
    assert await verdict(judge, "Michio Sugeno", "\\boxed{michio sugeno}") == "correct"
    assert await verdict(judge, "20C", "The final answer is \\boxed{20C}") == "correct"
    assert await verdict(judge, "70", "\\boxed{70}") == "correct"  # an integer answer, made a string
    assert await verdict(judge, "Michio Sugeno", "Lotfi Zadeh") == "incorrect"
    for blank in (None, "", "   "):
        result = await judge(Q, "Michio Sugeno", blank)
        assert result == Judgement("not_attempted", "no answer", "exact")
    assert await verdict(judge, "x", "\\boxed{...}") == "not_attempted"  # nothing but punctuation


async def test_f1_judge():
    judge = F1Judge()
    assert judge.name == "f1@0.8"
    assert await verdict(judge, "Michio Sugeno", "Michio Sugeno") == "correct"
    assert await verdict(judge, "the 1889 Exposition Universelle in Paris",
                         "1889 Exposition Universelle Paris") == "correct"  # 'in' missing: F1 0.89
    result = await judge(Q, "Michio Sugeno", "Sugeno")
    assert (result.verdict, result.reason) == ("incorrect", "token F1 0.67")
    assert await verdict(judge, "x", None) == "not_attempted"
    with pytest.raises(ConfigError):
        F1Judge(threshold=0)


# ---- multiple choice --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"), ("(B)", "B"), ("b", "B"), ("b) Only two", "B"), ("\\boxed{B}", "B"),
        ("The answer is B.", "B"), ("\\boxed{\\text{C}}", "C"), ("Answer: (d)", "D"), ("C. 12 days", "C"),
        ("After weighing the options, the correct answer is (A) because the pressure falls.", "A"),
        ("Final answer: J", "J"), ("**B**", "B"),
        ("I am not sure", None), ("A cat sat on the mat", None), ("e.g. several", None), ("", None),
    ],
)
def test_option_letter(answer, letter):
    assert option_letter(answer) == letter


async def test_mcq_judge_letters_and_upsc_gold():
    judge = MCQJudge()
    assert await verdict(judge, "b) Only two", "B") == "correct"
    assert await verdict(judge, "b) Only two", "(b) Only two") == "correct"
    assert await verdict(judge, "C", "\\boxed{C}") == "correct"
    assert await verdict(judge, "C", "The answer is B.") == "incorrect"
    result = await judge("q", "A", "I cannot tell from the options given")
    assert (result.verdict, result.reason) == ("incorrect", "no option letter in 'I cannot tell from the options given'")
    assert await verdict(judge, "A", None) == "not_attempted"


async def test_mcq_judge_falls_back_to_exact_for_free_text_gold():
    judge = MCQJudge()  # HLE mixes option letters with free-text answers such as 20C
    assert await verdict(judge, "20C", "\\boxed{20C}") == "correct"
    result = await judge("q", "20C", "\\boxed{19C}")
    assert (result.verdict, result.judge) == ("incorrect", "mcq")


# ---- numbers -----------------------------------------------------------------------------------


def test_parse_number():
    assert parse_number("\\boxed{1,000}") == 1000
    assert parse_number("The answer is 204.") == 204
    assert parse_number("$-3.50$") == parse_number("-3.5")
    assert parse_number("\\boxed{70}") == 70
    assert parse_number("no number here") is None


async def test_numeric_judge():
    judge = NumericJudge()
    assert await verdict(judge, "70", "\\boxed{70}") == "correct"
    assert await verdict(judge, "70", "So the sum is 70.0") == "correct"
    assert await verdict(judge, "1000", "\\boxed{1,000}") == "correct"
    assert await verdict(judge, "588", "\\boxed{587}") == "incorrect"
    assert await verdict(judge, "588", "I could not solve it") == "incorrect"
    assert await verdict(judge, "e^2", "\\boxed{e^2}") == "correct"  # no number in the gold: exact
    assert await verdict(judge, "70", "  ") == "not_attempted"


# ---- choosing ------------------------------------------------------------------------------------


def test_judge_for_auto_by_dataset_and_errors():
    assert judge_for("auto", dataset="GPQA-Diamond").name == "mcq"
    for name in ("medqa", "pubmedqa", "upsc_2025", "medxpertqa", "hle"):
        assert judge_for("auto", dataset=name).name == "mcq"
    assert judge_for("auto", dataset="aime25").name == "numeric"
    assert judge_for("auto", dataset="simpleqa").name == "exact"
    assert judge_for("auto").name == "exact"
    assert judge_for("f1").name == "f1@0.8"
    with pytest.raises(ConfigError, match="unknown judge 'fuzzy'"):
        judge_for("fuzzy")
    with pytest.raises(ConfigError, match="needs a chat model"):
        judge_for("llm")
    with pytest.raises(ConfigError, match="needs the llm judge"):
        judge_for("exact", prompt="{question} {gold} {answer}")
    with pytest.raises(ConfigError, match="judged mcq"):
        judge_for("auto", dataset="medqa", prompt="{question} {gold} {answer}")


def test_cache_key_is_a_sha256_of_all_inputs():
    key = cache_key("exact", "q", "g", "a")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key("exact", "q", "g", "a")
    assert len({key, cache_key("mcq", "q", "g", "a"), cache_key("exact", "q", "ga", ""),
                cache_key("exact", "qg", "", "a")}) == 4


def test_parse_verdict():
    assert parse_verdict("CORRECT\nThe answer names Michio Sugeno.") == ("correct", "The answer names Michio Sugeno.")
    assert parse_verdict("INCORRECT: gives Zadeh instead.") == ("incorrect", "gives Zadeh instead.")
    assert parse_verdict("not attempted\nIt says it does not know.")[0] == "not_attempted"
    assert parse_verdict("NOT_ATTEMPTED") == ("not_attempted", "")
    assert parse_verdict("unknown") == ("not_attempted", "")
    assert parse_verdict("**Incorrect**") == ("incorrect", "")
    assert parse_verdict("<think>it looks correct</think>Incorrect\nwrong year") == ("incorrect", "wrong year")
    assert parse_verdict("B") == ("incorrect", "")  # SimpleQA's grader letters
    assert parse_verdict("A") == ("correct", "")
    assert parse_verdict("I am unable to grade this") is None


# ---- the LLM grader, over loopback ------------------------------------------------------------


@pytest.fixture
def fake():
    with FakeSGLang(model_path="judge-model") as server:
        yield server


@pytest.fixture
async def chat(fake):
    client = ChatClient.from_spec(fake.url + "/v1", api_key=None, max_retries=0, backoff_s=0.001, name="judge")
    assert client is not None
    async with client:
        yield client


def chat_requests(fake: FakeSGLang) -> list[dict]:
    return [r for r in fake.requests if r["path"] == "/v1/chat/completions"]


class MemoryCache:
    def __init__(self) -> None:
        self.data: dict[str, Judgement] = {}

    async def get(self, key: str) -> Judgement | None:
        return self.data.get(key)

    async def put(self, key: str, judgement: Judgement) -> None:
        self.data[key] = judgement


async def test_llm_judge_sends_our_prompt_at_temperature_zero_and_parses_the_reply(fake, chat):
    fake.add("CORRECT\nThe answer names Michio Sugeno.", "Incorrect\nIt names Lotfi Zadeh.",
             "NOT_ATTEMPTED\nIt says it could not find out.")
    judge = judge_for("llm", chat=chat, retry=FAST)
    assert isinstance(judge, LLMJudge)
    digest = hashlib.sha256((EVAL_JUDGE_SYSTEM_PROMPT + "\n\n" + EVAL_JUDGE_USER_TEMPLATE).encode()).hexdigest()
    assert judge.name == f"llm:{fake.url}/v1@{digest[:12]}"  # until the server names its model
    assert await judge.resolve() == f"llm:judge-model@{digest[:12]}"
    first = await judge(Q, "Michio Sugeno", "It was Michio Sugeno {answer}")
    assert first == Judgement("correct", "The answer names Michio Sugeno.", judge.name)
    assert (await judge(Q, "Michio Sugeno", "Lotfi Zadeh")).verdict == "incorrect"
    assert (await judge(Q, "Michio Sugeno", "I could not find out")).verdict == "not_attempted"
    sent = chat_requests(fake)[0]["json"]
    assert sent["temperature"] == 0.0
    assert sent["messages"][0] == {"role": "system", "content": EVAL_JUDGE_SYSTEM_PROMPT}
    user = sent["messages"][1]["content"]
    assert Q in user and "Michio Sugeno {answer}" in user  # one pass: braces in texts stay as they are


async def test_llm_judge_does_not_ask_about_a_blank_answer(fake, chat):
    judge = judge_for("llm", chat=chat, retry=FAST)
    assert (await judge(Q, "Michio Sugeno", None)).verdict == "not_attempted"
    assert (await judge(Q, "Michio Sugeno", " \n")).verdict == "not_attempted"
    assert chat_requests(fake) == []


async def test_llm_judge_failing_every_attempt_is_a_judge_error_never_incorrect(fake, chat):
    fake.add("CORRECT\nfine")
    fake.fail_next(5, 503)
    result = await judge_for("llm", chat=chat, retry=FAST)(Q, "Michio Sugeno", "Michio Sugeno")
    assert result.verdict == "judge_error"
    assert "after 5 attempts" in result.reason and "503" in result.reason
    assert len(chat_requests(fake)) == 5
    fake.fail_next(4, 502)  # the fifth attempt gets through
    result = await judge_for("llm", chat=chat, retry=FAST)(Q, "Michio Sugeno", "Michio Sugeno")
    assert (result.verdict, len(chat_requests(fake))) == ("correct", 10)


async def test_llm_judge_rejected_request_or_unreadable_reply_is_a_judge_error(fake, chat):
    fake.add(Reply(status=400, error="bad request"), "I would rather not say.")
    judge = judge_for("llm", chat=chat, retry=FAST)
    rejected = await judge(Q, "Michio Sugeno", "Michio Sugeno")
    assert rejected.verdict == "judge_error" and "HTTP 400" in rejected.reason
    assert len(chat_requests(fake)) == 1  # a 4xx is not retried
    unreadable = await judge(Q, "Michio Sugeno", "Michio Sugeno")
    assert unreadable.verdict == "judge_error" and "no verdict" in unreadable.reason


async def test_llm_judge_cache_hit_avoids_a_second_request(fake, chat):
    fake.add("CORRECT\nsame person", Reply(status=503), Reply(status=503), Reply(status=503),
             Reply(status=503), Reply(status=503))
    cache = MemoryCache()
    judge = judge_for("llm", chat=chat, cache=cache, retry=FAST)
    first = await judge(Q, "Michio Sugeno", "Sugeno, Michio")
    assert first.verdict == "correct"
    assert list(cache.data) == [cache_key(judge.name, Q, "Michio Sugeno", "Sugeno, Michio")]
    again = await judge_for("llm", chat=chat, cache=cache, retry=FAST)(Q, "Michio Sugeno", "Sugeno, Michio")
    assert again == first and len(chat_requests(fake)) == 1
    failed = await judge(Q, "Michio Sugeno", "someone else")
    assert failed.verdict == "judge_error" and len(cache.data) == 1  # errors are never cached


SIMPLEQA_GRADER = (
    "Grade the predicted answer as A) CORRECT, B) INCORRECT or C) NOT_ATTEMPTED.\n"
    "Question: {question}\nGold target: {target}\nPredicted answer: {predicted_answer}\n"
    "Just return the letter A, B or C."
)


async def test_a_grader_prompt_file_replaces_ours_and_changes_the_name(fake, chat):
    fake.add("A", "B")
    ours = judge_for("llm", chat=chat, retry=FAST)
    theirs = judge_for("llm", chat=chat, prompt=SIMPLEQA_GRADER, retry=FAST)
    assert theirs.name != ours.name
    assert theirs.name.endswith("@" + hashlib.sha256(SIMPLEQA_GRADER.encode()).hexdigest()[:12])
    assert (await theirs(Q, "Michio Sugeno", "Michio Sugeno")).verdict == "correct"
    assert (await theirs(Q, "Michio Sugeno", "Zadeh")).verdict == "incorrect"
    messages = chat_requests(fake)[0]["json"]["messages"]
    assert messages == [{"role": "user", "content": SIMPLEQA_GRADER.replace("{question}", Q)
                         .replace("{target}", "Michio Sugeno").replace("{predicted_answer}", "Michio Sugeno")}]
    assert judge_for("auto", dataset="simpleqa", chat=chat, prompt=SIMPLEQA_GRADER).name == theirs.name


def test_a_grader_prompt_without_its_slots_is_refused():
    with pytest.raises(ConfigError, match=r"no \{target\} or \{gold\} slot"):
        check_grader("Question: {question}\nAnswer: {answer}")
    check_grader("{question} {gold} {answer}")


async def test_an_unreachable_judge_server_is_a_judge_error():
    client = ChatClient.from_spec(f"http://127.0.0.1:{free_port()}/v1", api_key=None, max_retries=0, name="judge")
    assert client is not None
    async with client:
        result = await judge_for("llm", chat=client, retry=RetryPolicy(attempts=2, sleep=no_sleep))(Q, "x", "y")
    assert result.verdict == "judge_error"
    assert "after 2 attempts" in result.reason and "connection refused" in result.reason

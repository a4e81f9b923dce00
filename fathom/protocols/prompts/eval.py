"""What the evaluation grader reads (:class:`fathom.eval.judges.LLMJudge`): our own wording.

The grader compares a model's answer with the gold answer of a benchmark question. Its reply
starts with one label, ``CORRECT``, ``INCORRECT`` or ``NOT_ATTEMPTED``, followed by one sentence
of reason. ``EVAL_JUDGE_USER_TEMPLATE`` has three slots, ``{question}``, ``{gold}`` and
``{answer}``, filled in one pass (braces inside the texts are never expanded).
"""

from __future__ import annotations

EVAL_JUDGE_SYSTEM_PROMPT = (
    "You grade answers to benchmark questions. You are given a question, its gold answer and a "
    "model's answer, and you decide whether the model's answer means the same as the gold answer.\n"
    "- CORRECT: the answer states the gold answer, or something equivalent to it. Ignore "
    "capitalisation, punctuation, word order, articles, units written differently, and extra "
    "detail that does not contradict the gold answer. A number is correct when it equals the gold "
    "number, allowing for rounding the question permits. For a multiple-choice question, compare "
    "the option the answer chose (its letter, or the option's text) with the gold option.\n"
    "- INCORRECT: the answer gives something else, contradicts the gold answer, hedges between "
    "several candidates, or includes a wrong claim about what the question asks.\n"
    "- NOT_ATTEMPTED: the answer gives no answer to the question, for example it says it does not "
    "know, asks for more information, or only describes what it would do.\n"
    "Judge only the final answer, not the reasoning that led to it. Do not answer the question "
    "yourself, and do not use what you know to overrule the gold answer."
)

EVAL_JUDGE_USER_TEMPLATE = (
    "Question:\n{question}\n\n"
    "Gold answer:\n{gold}\n\n"
    "Model's answer:\n{answer}\n\n"
    "Reply with the label CORRECT, INCORRECT or NOT_ATTEMPTED on the first line, then one "
    "sentence giving the reason on the second line, and nothing else.\n"
)

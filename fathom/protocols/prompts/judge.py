"""What the verification judge reads, and the notes the verifier sends the search model back with.

The judge is a chat model (the query LLM, else the search model's chat route) that decides from
the evidence alone whether it supports an answer; its reply is one short line of JSON. It is only
asked when the answer does not appear verbatim in a page the run read (or with ``--verify strict``).
"""

from __future__ import annotations

# ---- the judge ----------------------------------------------------------------------------------

JUDGE_SYSTEM_PROMPT = """\
You check research answers. You get a question, a proposed answer, and numbered evidence a \
researcher collected from the web. Decide only from that evidence whether it supports the answer: \
do not use what you know yourself. Reply at once with one line of JSON and nothing else:
{"supported": true or false, "sources": [numbers of the evidence that supports it], "reason": "at \
most twelve words: why, or what is still missing"}
"""

NO_EVIDENCE = "(no evidence was collected)"


def judge_user_message(question: str, answer: str, evidence: str) -> str:
    """The judge's user turn: the question, the proposed answer and the numbered evidence."""
    return f"Question:\n{question}\n\nProposed answer:\n{answer}\n\nEvidence:\n{evidence}"


def evidence_block(number: int, tool: str, url: str, text: str) -> str:
    """One numbered piece of evidence: which tool, which page, what it said."""
    return f"[{number}] {tool}{' ' + url if url else ''}\n{text}"


# ---- send-back notes (the search model's next user turn) ----------------------------------------

NO_ANSWER_NOTE = "I could not find a final answer in your last turn."
NOT_BOXED_NOTE = "Your final answer must be written inside \\boxed{}."
NO_SUCCESSFUL_CALL_NOTE = (
    "You answered without a single successful tool call, so nothing backs the answer. "
    "Search the web and check it before answering again."
)
ANSWER_AGAIN_NOTE = "Give your final answer again, inside \\boxed{}."


def unsupported_note(reason: str, missing: str) -> str:
    """The judge found the answer unsupported: say why, what is missing, and to research on."""
    return (
        "A check of your answer against the evidence you gathered found it unsupported: "
        f"{reason or 'the evidence does not show it.'}"
        + (f" Still missing: {missing}." if missing else "")
        + " Research further, then give your final answer inside \\boxed{}."
    )

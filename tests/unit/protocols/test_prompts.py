"""Every sentence addressed to a model lives in fathom/protocols/prompts/, and its bytes stay put.

The guard reads the package's source with ``ast`` and lists string literals that look like prose
(a sentence of some length) outside the prompts package. What is skipped, and why:

* fathom/cli/: text for the person at the terminal;
* docstrings and other bare string statements: documentation;
* log and warning calls, and the messages of exceptions (``raise …``, ``SomeError(…)``): text for
  operators and callers. Except :class:`ToolCallError`: its message is what the model reads.

A hit is a literal (an f-string counts its literal parts, with ``{}`` per field) of at least
``MIN_CHARS`` characters with a word ending in ``.``, ``:``, ``?`` or ``!`` after a space. Short
labels and markers (``[error]``, ``result:``, ``<tool_call>``) stay below that on purpose.
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import fathom
from fathom.protocols.prompts import baselines, evidence, judge, search, synthesizer

PACKAGE = Path(fathom.__file__).parent
EXEMPT = ("protocols/prompts/", "cli/")
MIN_CHARS = 40
SENTENCE = re.compile(r"\s[A-Za-z]{2,}[.:?!](?:\s|$)")
LOGGERS = {"log", "logger", "logging", "warnings"}
MODEL_FACING_ERRORS = {"ToolCallError"}

# (file, start of the text) -> why it may stay. Keep this short.
ALLOWED = {
    ("tools/search/ddg.py", "DuckDuckGo search needs the ddgs package"):
        "an install hint for the user, raised as a configuration error",
}


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _skipped(tree: ast.AST) -> set[int]:
    """ids of nodes that are not model-facing by construction (see the module docstring)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr):
            skip.add(id(node.value))  # a docstring, or a string statement documenting an attribute
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)  # judged as a whole
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if getattr(exc, "id", getattr(exc, "attr", "")) not in MODEL_FACING_ERRORS:
                skip.update(id(n) for n in ast.walk(node.exc))
        elif isinstance(node, ast.Call):
            name = _callee(node)
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            is_log = isinstance(owner, ast.Name) and owner.id in LOGGERS
            is_error = name.endswith(("Error", "Exception")) and name not in MODEL_FACING_ERRORS
            if is_log or is_error:
                skip.update(id(n) for n in ast.walk(node))
    return skip


def sentences(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every string literal in ``source`` that reads like prose."""
    tree = ast.parse(source)
    skip = _skipped(tree)
    found = []
    for node in ast.walk(tree):
        text = _literal(node)
        if text is None or id(node) in skip:
            continue
        if len(text) >= MIN_CHARS and SENTENCE.search(text):
            found.append((node.lineno, text))
    return sorted(found)


def test_model_facing_sentences_live_in_the_prompts_package():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(EXEMPT):
            continue
        for line, text in sentences(path.read_text(encoding="utf-8")):
            if any(relative == f and text.startswith(start) for f, start in ALLOWED):
                continue
            offenders.append(f"fathom/{relative}:{line}: {text[:80]!r}")
    assert not offenders, (
        "Text addressed to a model belongs in fathom/protocols/prompts/ (import it from there); "
        "text for people belongs in a docstring, a log call or an exception. Found:\n  "
        + "\n  ".join(offenders)
    )


def test_the_guard_finds_a_note_written_in_a_node():
    source = '''
"""A node. Its docstring is prose: that is fine."""
import logging
log = logging.getLogger(__name__)

def node(state):
    """Also fine: documentation."""
    log.warning("the judge failed: %s; the answer stays unverified", state)
    if not state:
        raise ValueError("a state is needed here: call the node with one")
    error = ToolError("the search backend refused the request: check the key")
    label = "[error] failed:"
    note = f"You have {state} turns left. Answer now, inside \\\\boxed{{}}."
    return [HumanMessage("Your answer was not checked: search the web before answering.")]

def check(args):
    raise ToolCallError("the url must be a full address: start it with https://")
'''
    found = [line for line, _ in sentences(source)]
    assert found == [13, 14, 17]  # the two notes to the model and the model-facing call error


# The built-in prompts, byte for byte: servers cache the prompt prefix, and runs record these
# digests. Changed a prompt on purpose? Update its digest here in the same commit.
DIGESTS = {
    "SEARCH_SYSTEM_PROMPT": (search, "07a3b28b4ce170dc7b15773d772b4261cc77cbd00f20481ca61723c4aacfcef7"),
    "CHAT_SYSTEM_PROMPT": (search, "1dc33d71cd5b7dfc1d879aaab0fbba0414c507b8271a23ade928a3d61f6e9c80"),
    "FORCE_ANSWER_NOTE": (search, "dd29de6b6927684cd1c742254c74b73c82605c7a6ed6010dd6097fd200c8b83c"),
    "FORCED_CALL_ERROR": (search, "fcade0a5560c1023e1d8c85514a0ea757fa95eaf3511e2c778bb2c9dc08599ec"),
    "FOLDED_LABEL": (search, "e5cff4846275605ff53c23e2ff363cdc62849b75341809eb820051b57e8f4f40"),
    "SYNTH_SYSTEM_PROMPT": (synthesizer, "1e111ac7c69d6cfe4052ad5689fb3e13d10b09e98656000b102b24fa651d9c0f"),
    "SYNTH_USER_LEAD_IN": (synthesizer, "2bc0216f8c1aee588ad6b87c6c093b0659b8c3f90d346eba65c87ef53433b3c6"),
    "JUDGE_SYSTEM_PROMPT": (judge, "c1848d268efac1102e3d9d5c554ae10fe1e1bbb334b594ff29d2719268fd99ed"),
    "EVIDENCE_SYSTEM_PROMPT": (evidence, "584d3a10feee5f286ab6f10656dded3f5dc84395fafb112f9ce8f74fd47db8b0"),
    "EVIDENCE_USER_PROMPT": (evidence, "7f3789a7b824173a78e972a10b598ba8a9d9ce19bcbcfd1fbf17071a8141213c"),
    "R1_SYSTEM_PROMPT": (baselines, "5db535a1a5c15e05e38349eb6504225c82e06b0126bdb01423baf129d5a3340b"),
    "R1_SUMMARY_PROMPT": (baselines, "330279e06fd66ae8e0f71695585882ae7535e316056b864795c494240811a71b"),
    "ZEROSEARCH_INSTRUCTIONS": (baselines, "8ef1865b1628cabcd54d280b064a63ff644e8ac4813f81ce54688dec0e490461"),
    "SEARCH_O1_SYSTEM_PROMPT": (baselines, "e76cea2c46410a7cbe8392520830dbae0009d248c66b205b36af818a66b80120"),
    "SEARCH_O1_DOCUMENTS_PROMPT": (baselines, "5dcba84b24b1d41396c6f535e717a82121c9794c823b73033114853b964a4971"),
}


def test_builtin_prompts_are_byte_identical():
    changed = [
        name for name, (module, digest) in DIGESTS.items()
        if hashlib.sha256(getattr(module, name).encode("utf-8")).hexdigest() != digest
    ]
    assert not changed, f"prompt text changed: {changed}"
    assert search.DEFAULT_SEARCH_PROMPT.sha256 == DIGESTS["SEARCH_SYSTEM_PROMPT"][1]
    assert synthesizer.DEFAULT_SYNTH_PROMPT.sha256 == DIGESTS["SYNTH_SYSTEM_PROMPT"][1]


def test_notes_keep_their_wording():
    assert search.FORCE_ANSWER_NOTE.format(reason=search.rounds_limit_reason(8)) == (
        "Your research budget is used up (the limit of 8 turns). Do not call any more tools. Using "
        "what you have found so far, give your best final answer now, inside \\boxed{}."
    )
    assert search.time_limit_reason(90.4) == "the time limit of 90 s"
    # Folded tool results: a digest is the label, then what it keeps (see fathom/nodes/folding.py).
    assert search.folded_page("https://a.org/x", "A page", ["one", "two"]) == (
        "[folded: key lines only] A page <https://a.org/x>\n- one\n- two"
    )
    assert search.folded_page("", "A page", ["one"]) == "[folded: key lines only] A page\n- one"
    assert search.folded_search([("https://a.org", "A"), ("https://b.org", "https://b.org")]) == (
        "[folded: key lines only]\n- https://a.org A\n- https://b.org"
    )
    assert search.context_limit_reason(40960) == "the context window of 40960 tokens"
    assert judge.unsupported_note("", "") == (
        "A check of your answer against the evidence you gathered found it unsupported: the evidence "
        "does not show it. Research further, then give your final answer inside \\boxed{}."
    )
    assert judge.unsupported_note("Only a snippet.", "a date") == (
        "A check of your answer against the evidence you gathered found it unsupported: Only a "
        "snippet. Still missing: a date. Research further, then give your final answer inside \\boxed{}."
    )
    assert synthesizer.search_result_heading(2, 'query_url(url="u")', failed=True) == (
        'SEARCH RESULT 2: query_url(url="u") (failed)'
    )

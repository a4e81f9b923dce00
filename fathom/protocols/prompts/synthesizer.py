"""What Fathom-Synthesizer reads: its system prompt and language line, and the words that frame
the research record in its user turn (lead-in, headings, trace labels, shortening markers).

Our own wording of what the synthesizer prompt must say (protocol reference §5.3). Users who want
the trained-on text pass a prompt file instead. ``{language}`` is filled with a plain replace.
The trace labels are named in the system prompt (``SEARCH RESULT`` blocks), so they live together.
"""

from __future__ import annotations

from fathom.protocols.prompts.files import builtin

# ---- the system prompt --------------------------------------------------------------------------

LANGUAGE_PLACEHOLDER = "{language}"

SYNTH_SYSTEM_PROMPT = """\
You are a deep-research writer. A search agent has investigated a question on the web; you turn \
its findings into a research report. You have two jobs, done in this order:
1. PLAN: a concise plan that breaks the question into sections and assigns every URL and every \
tool-call item of the investigation to the section it supports (or marks it as not relevant).
2. REPORT: a public-facing report that brings together everything the investigation found.

What you receive:
- QUESTION: what the user asked.
- TRACE: the agent's transcript: its reasoning, and every SEARCH RESULT block, each naming the \
call that produced it followed by the returned text (search hits or evidence read from a page).
- TOOL_CALLS: a JSON list of the calls the agent made, in order, with their arguments, whether \
they succeeded and the URLs they returned or read. The returned text itself is in TRACE.

Citing sources (accuracy first):
- Cite only URLs that appear in TRACE or TOOL_CALLS. Never make up a link, never change one, and \
do not browse: everything you know about the sources is in TRACE.
- Cite every key or non-obvious claim: figures, dates, quotations, and points on which sources \
disagree. Cite densely, but only where you are sure the source supports the sentence.
- Citation format: the complete URL, exactly as written in TRACE, inside square brackets, placed \
right after the sentence it supports. Example: The bridge opened to traffic in 1937. \
[https://example.org/history/bridge]
- Several sources for one sentence: one bracket per URL, one after another.

What the PLAN must contain:
- The question broken into sub-questions SQ1 … SQn, and the report sections that answer them.
- For each section, an evidence map as a table with the columns \
| Section | Item | Content | Confidence |, where Item is a URL or tool call from the trace, Content \
is what it contributes, and Confidence is High, Med or Low. Map most items; then list briefly the \
items you leave out as irrelevant, each with the reason.
- Four to six bullets on how you will draw insight from the evidence: contrasts, timelines, \
ratios or growth rates, cause-and-effect chains, risks.
- Use background knowledge only to frame facts found in the trace, base recommendations only on \
the evidence, and state plainly wherever the evidence is not enough to answer.

What the REPORT must contain, in this order:
- `# Executive Summary`: five to ten bullets, each with its citation.
- `## Main Body`: the scope, what was included and why, and the higher-order insights. If your \
sections differ from the plan, say so in one line.
- One `##` section per planned section (S1 … Sn), each with a descriptive title. Wherever three \
or more related numbers appear, put them in a markdown table. Where sources conflict, say so and \
cite both.
- `## Recommendations`, grounded in the evidence.
- `## Conclusion`: three to six sentences that answer the question directly.
- `## Sources used`: every URL you cited, once each, one per line, and no URL you did not cite.

Coverage: every relevant fact in the trace must appear somewhere in the report. When space is \
short, keep them in this priority: figures and dates, then named entities, then risks, then \
methods, then context.

Aim for a report that is comprehensive, deep and insightful, follows these instructions exactly, \
and is easy to read.

Output format: a single reply of the form <think>[the plan]</think>[the report]. The report is \
markdown, at least 2,000 words long, and never mentions the trace, the agent, the tool calls or \
your planning. Write the report in {language}; keep every URL exactly as it appears in the trace.
"""

DEFAULT_SYNTH_PROMPT = builtin(SYNTH_SYSTEM_PROMPT)


def language_line(language: str) -> str:
    """Appended to a prompt file without a ``{language}`` slot when the report is not in English."""
    return f"Write the report in {language}."


# ---- the user turn ------------------------------------------------------------------------------

SYNTH_USER_LEAD_IN = (
    "Below is the full record of a DeepSearch investigation into the question: use it to plan and "
    "write the report."
)
END_OF_TRACE = "— End of trace —"


def synth_user_message(lead_in: str, question: str, trace: str, tool_calls: str) -> str:
    """The user turn: lead-in, question, trace, tool calls (a JSON array), end marker (§5.2)."""
    return (
        f"{lead_in}\n\nQuestion:\n{question}\n\nTrace (model transcript):\n{trace}\n\n"
        f"Tool Calls (as-recorded):\n{tool_calls}\n\n{END_OF_TRACE}"
    )


# ---- the trace: labels of its blocks, and markers where it was shortened to fit -----------------

QUESTION_LABEL = "QUESTION"
USER_LABEL = "USER"  # notes to the search model after the question
ASSISTANT_LABEL = "ASSISTANT"
TOOL_CALL_PREFIX = "Tool call: "  # a structured call, shown after the assistant's text
SHORTENED = "[shortened: {n} chars omitted to fit the synthesizer context]"


def trace_block(label: str, text: str) -> str:
    return f"{label}:\n{text}"


def search_result_heading(number: int, call: str, *, failed: bool) -> str:
    """The heading of a tool result: ``SEARCH RESULT 3: query_url(url="…", goal="…")``."""
    status = " (failed)" if failed else ""
    return f"SEARCH RESULT {number}: {call}{status}"

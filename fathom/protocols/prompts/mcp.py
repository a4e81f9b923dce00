"""What the model of an MCP client (Claude Desktop, an IDE's agent) reads about ``fathom mcp``:
the server's instructions, each tool's description and each argument's.

The tools themselves are in :mod:`fathom.mcp.server`.
"""

from __future__ import annotations

SERVER_INSTRUCTIONS = (
    "Fathom researches a question on the web with a small search model: many rounds of searching and "
    "reading pages, then a short answer with the pages it used as sources. With deepresearch it also "
    "writes a cited report. A run takes minutes; every run is saved, so an interrupted one can be "
    "continued with resume and its id."
)

RESEARCH_DESCRIPTION = (
    "Research a question on the web and return the answer, its sources and the run id. "
    "Set deepresearch to true for a cited long-form report as well (slower). "
    "Progress is reported while the run works. If the call is cancelled, the run stops and can be "
    "continued later with resume."
)
RESUME_DESCRIPTION = (
    "Continue an interrupted run from where it stopped and return its answer, sources and status. "
    "Work that finished before the interruption is not repeated."
)
LIST_RUNS_DESCRIPTION = "List recent research runs, newest first, with their id, question, status and answer."
GET_RUN_DESCRIPTION = (
    "Show one research run by its id: question, status, answer and sources, and its report when asked."
)
REPORT_RESOURCE_DESCRIPTION = "The cited research report of a deepresearch run, as a Markdown document."

QUESTION_ARG = "The question to research, in full."
DEEPRESEARCH_ARG = "Also write a cited long-form report on the question (takes longer)."
INCLUDE_REPORT_ARG = "Return the report's Markdown text in the result (when the run wrote one)."
RUN_ID_ARG = "The id of a run, as research or list_runs returned it."
NEW_RUN_ID_ARG = "An id for the new run; leave it out to get a fresh one."
MAX_ROUNDS_ARG = "At most this many search rounds before the answer is forced; leave it out for the default."
LIMIT_ARG = "At most this many runs."
STATUS_ARG = "Only runs with this status: running, waiting, interrupted, answered, unanswered or failed."

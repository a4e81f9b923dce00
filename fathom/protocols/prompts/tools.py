"""How the two research tools are described to the search model, and what it is told when a call
it wrote cannot be run.

The tool schemas' structure (names, parameters, limits) is in :mod:`fathom.tools.specs`; the
allow-list check that raises these errors is :func:`fathom.protocols.calls.validate_call`.
"""

from __future__ import annotations

from fathom.tools.base import ReaderNotes

# ---- tool descriptions (in the schema list of the prompt, or the ``tools`` of a chat request) ---

SEARCH_URLS_DESCRIPTION = (
    "Run a web search for a text query and get back a ranked list of result links, "
    "each with its title and a short snippet."
)
QUERY_URL_DESCRIPTION = (
    "Open one web page and get back the evidence on it that serves a stated goal: "
    "the passages relevant to what you want to learn from that page."
)
TOOL_DESCRIPTIONS: dict[str, str] = {
    "search_urls": SEARCH_URLS_DESCRIPTION,
    "query_url": QUERY_URL_DESCRIPTION,
}

# ---- a call that cannot be run (the text after ``[error] `` in its tool response) ---------------

INVALID_CALL_ERROR = "invalid tool call"  # a refused call that came without a reason
CALL_NOT_OBJECT_ERROR = 'a call must be a JSON object: {"name": …, "arguments": {…}}'
ARGUMENTS_NOT_OBJECT_ERROR = "the arguments must be a JSON object"
ARGUMENTS_NOT_JSON_ERROR = "arguments are not valid JSON"  # structured (chat) tool calls
CALL_TOO_COMPLEX_ERROR = "the call could not be read: its JSON nests too deeply or holds a number too long"


def call_not_json_error(msg: str, pos: int) -> str:
    return f"the call is not valid JSON ({msg} at position {pos})"


def unknown_tool_error(name: object, known: str) -> str:
    return f"unknown tool {name!r}; the available tools are: {known}"


def tool_arguments_not_object_error(name: str) -> str:
    return f"the arguments of {name} must be a JSON object"


def unknown_arguments_error(name: str, unknown: str, known: str) -> str:
    return f"{name} does not take {unknown}; it takes {known}"


def missing_arguments_error(name: str, missing: str) -> str:
    return f"{name} needs the argument(s) {missing}"


def empty_string_error(name: str, key: str) -> str:
    return f"{name}: {key} must be a non-empty string"


def too_long_error(name: str, key: str, max_chars: int) -> str:
    return f"{name}: {key} is longer than {max_chars} characters"


def integer_range_error(name: str, key: str, high: int) -> str:
    return f"{name}: {key} must be an integer from 1 to {high}"


def unpaired_surrogate_error(name: str, key: str) -> str:
    return f"{name}: {key} holds an unpaired surrogate escape (\\ud800 to \\udfff); write the characters themselves"



# ---- page readers (fathom.tools.readers): notes read with a page's text, and failures ----------


def _archived_snapshot_note(url: str, taken: str, refusal: str) -> str:
    return (f"[This is an archived snapshot of {url} taken on {taken} by the Internet Archive, "
            f"not the live page, which refused us ({refusal}). It may be out of date.]")


def _arxiv_pdf_note(reason: str) -> str:
    return f"[The paper's PDF could not be read ({reason}): only its abstract page follows.]"


READER_NOTES = ReaderNotes(
    archived=_archived_snapshot_note,
    no_snapshot="the Internet Archive has no snapshot of this page",
    no_transcript="[This video has no transcript we could read: only its title and description follow.]",
    arxiv_pdf=_arxiv_pdf_note,
    browser_missing=("the page may need JavaScript, and no headless browser is installed to run it "
                     "(the 'browser' extra and Chromium)"),
)

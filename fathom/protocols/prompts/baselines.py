"""What the baseline search agents read (``--search-protocol legacy | r1-searcher | zerosearch |
search-o1``): their system prompts or instructions, the prompts of their summarising steps, the
layouts' fixed texts and the notes on a turn that went wrong, all in our own words.

Each follows what the protocol reference (§7) says the original asks for: the tags, what they
enclose and where the answer goes. ``--prompt FILE`` replaces the main prompt of each (the system
prompt, or ZeroSearch's instructions) with a user's text, byte for byte; ``--prompt trained`` uses
the upstream texts ``fathom prompts fetch`` installed, the summarising steps' included.
"""

from __future__ import annotations

# ---- legacy (II-Search-4B, Jan-Nano): the Fathom system prompt with these two tools ------------

WEB_SEARCH_DESCRIPTION = "Search the web for a text query; returns links to pages, each with a short snippet."
WEB_VISIT_DESCRIPTION = "Open a web page and return its text."
WEB_VISIT_URL_DESCRIPTION = "The address of one web page."

# ---- R1-Searcher ------------------------------------------------------------------------------

R1_SYSTEM_PROMPT = """\
You are a helpful assistant. Answer the user's question by reasoning it through first and then \
giving the final answer. Put the reasoning inside <think> </think> and the final answer inside \
<answer> </answer>, like this: "<think> the reasoning </think>
<answer> the final answer </answer>".
While you reason you may search, one query at a time, by writing a few keywords like this: \
"<|begin_of_query|> keyword_1 keyword_2 ... <|end_of_query|>". The results then come back as \
"<|begin_of_documents|> ...search results... <|end_of_documents|>"."""

# The summary of a page for R1-Searcher's query, written by the same model; ``{search_query}`` and
# ``{document}`` are filled in. The summary follows the marker on the last line.
R1_SUMMARY_MARKER = "[Extracted Content]:"
R1_SUMMARY_PROMPT = """\
## Task
Read the web page below and pick out what it says about the search query. Write it as one \
summary paragraph, not as a bare answer. If the page has nothing to do with the query, write None.

## Output format
[Extracted Content]: <the summary paragraph, or None>

## Search query
{search_query}

## Web page
{document}

## Output
"""
R1_NO_DOCUMENTS = "None"  # what the model reads when no page had anything on its query

# ---- ZeroSearch -------------------------------------------------------------------------------

# The user turn opens with this, then the question (see zerosearch_user).
ZEROSEARCH_INSTRUCTIONS = (
    "Answer the question below. Each time you receive new information, reason about it inside "
    "<think> and </think> first. When you are missing knowledge, query the search engine with "
    "<search> query </search>, and the results will come back between <information> and "
    "</information>. Search as often as you need to. When you need no more knowledge, give the "
    "final short answer inside <answer> and </answer>."
)
ZEROSEARCH_NO_RESULTS = "No information available"


def zerosearch_user(instructions: str, question: str) -> str:
    """ZeroSearch's one user turn: the instructions, then the question."""
    return f"{instructions} Question: {question}\n"

# ---- Search-o1 --------------------------------------------------------------------------------

SEARCH_O1_SYSTEM_PROMPT = """\
You are a reasoning assistant who can search the web to answer the user's question accurately.

To search, write <|begin_search_query|> your query <|end_search_query|>. The system then searches, \
reads the most relevant web page and gives you what it found as \
<|begin_search_result|> ...what was found... <|end_search_result|>.

Search again whenever you need to, up to {max_searches} times in all. Once you have what you \
need, finish your reasoning.

Example:
Question: "Which city hosted the first Olympic Games held in the same year as the first Tour de France?"
Thinking: I need the year of the first Tour de France, then the Olympic host city of that year.
<|begin_search_query|>first Tour de France year<|end_search_query|>
(the system returns what it found)
Thinking: The first Tour de France was in 1903; there were no Olympics that year, so I check the \
nearest Games.
<|begin_search_query|>Olympic Games 1904 host city<|end_search_query|>
(the system returns what it found)
Thinking: I can answer now.

Remember: start each search with <|begin_search_query|> and end it with <|end_search_query|>, and \
give your final answer between <answer> and </answer>."""

# The reason-in-documents step, by the same model: what the page found by a search adds to the
# reasoning so far. ``{prev_reasoning}``, ``{search_query}`` and ``{document}`` are filled in.
SEARCH_O1_DOCUMENTS_PROMPT = """\
**Task**
You are given the **Reasoning so far** on a question, the **Current search query** and the \
**Web page** the search found. Take from the page the facts that help with the current query and \
that move the reasoning forward, and state them accurately.

**Output**
- If the page helps, write **Final Information** on its own line, then the helpful facts.
- If it does not, write **Final Information** on its own line, then: No helpful information found.
Put your output inside <information></information> tags.

**Reasoning so far**
{prev_reasoning}

**Current search query**
{search_query}

**Web page**
{document}
"""
SEARCH_O1_NOTHING_FOUND = "No helpful information found."

# ---- notes on a turn that went wrong (all tag protocols) --------------------------------------


def unclosed_query_note(open_tag: str, close_tag: str) -> str:
    """A query that was opened and never closed: it was not searched."""
    return f"Your search was not run: end the query with {close_tag}, as in {open_tag} your query {close_tag}."


def empty_query_note(open_tag: str, close_tag: str) -> str:
    """A query with nothing in it."""
    return f"Your search was empty, so nothing was searched. Put keywords between {open_tag} and {close_tag}."


def no_action_note(open_tag: str, close_tag: str) -> str:
    """A turn that neither searched nor answered."""
    return (
        f"Your last turn neither searched nor answered. Search with {open_tag} your query {close_tag}, "
        "or give your final answer inside <answer> </answer>."
    )


DUPLICATE_QUERY_NOTE = (
    "You already searched for exactly this, and what it found is above. Search for something else, "
    "or give your final answer inside <answer> </answer>."
)


def search_limit_note(max_searches: int) -> str:
    """A search beyond the protocol's search limit (it is not run)."""
    return (
        f"Your search was not run: you have used all {max_searches} searches. "
        "Give your final answer now, inside <answer> </answer>."
    )


FORCED_SEARCH_NOTE = (
    "Your search was not run: no more searches are allowed. Give your final answer now, inside "
    "<answer> </answer>."
)


def with_answer_tags(note: str) -> str:
    """One of our notes (written for ``\\boxed{}`` answers) as a tag-format model must read it."""
    return note.replace("\\boxed{}", "<answer> </answer>")

"""Tag protocols: the R1-Searcher, ZeroSearch and Search-o1 baselines of the Fathom paper.

Each model searches by writing a query between two tags, and the turn ends there (a stop string);
the results go back in the model's own layout; the final answer is the last ``<answer>…</answer>``
(upstream's harness looked for ``\\boxed{}`` in Search-o1's output, bug E3). Formats, stop strings,
sampling, layouts and limits follow the protocol reference (§7):

* ``r1-searcher``: a search reads the first three en.wikipedia.org hits; the same model sums up
  each page for the query until one is on topic, and that summary goes back in a user turn between
  ``<|begin_of_documents|>`` tags;
* ``zerosearch``: no system turn; the top five hits (title and snippet) go back *inside* the
  assistant turn between ``<information>`` tags;
* ``search-o1``: a search reads the first hit with text, cut to a window around the sentence most
  like its snippet; the same model then reasons over that page (reason-in-documents) and its
  findings go back in a user turn. Ten searches at most, a repeated query is not run again.

Fixed on the way: the results come back between the tags the Search-o1 prompt names
(``<|begin_search_result|>``; upstream inserted ``<|begin_of_document|>``) and the role names are
followed by a newline; a malformed, repeated or surplus query becomes a note the model reads.

Everything is rendered append-only from the transcript. A summary (or reasoning) made by the same
model is stored on the turn it preceded (``additional_kwargs["documents"]``), so a resumed run
renders the very same prompt without asking the model again.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import tool_call

from fathom.models.base import ContextLengthError, Generation
from fathom.models.sglang import SGLangClient
from fathom.protocols.base import (
    ANSWER_FALLBACK_CHARS,
    Turn,
    TurnBudget,
    call_order,
    estimate_tokens,
    find_boxed,
)
from fathom.protocols.prompts import baselines as say
from fathom.protocols.prompts.search import ELIDED_TOOL_RESULT, EMPTY_TURN_NOTE, FOLDED_LABEL, cut_off_note

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_ANSWER = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)(?:" + re.escape(ANSWER_CLOSE) + r"|\Z)", re.DOTALL)
_SLOT = re.compile(r"\{(search_query|document|prev_reasoning)\}")


def _variants(tag: str) -> tuple[str, ...]:
    """A closing tag as a stop string, with the leading space and trailing newlines models add."""
    return tuple(f"{lead}{tag}{tail}" for tail in ("", "\n", "\n\n") for lead in ("", " "))


@dataclass(frozen=True)
class TagFormat:
    """How one baseline writes a search, when its turn stops, how it samples and its limits."""

    name: str
    query_open: str
    query_close: str
    stops: tuple[str, ...]
    temperature: float
    repetition_penalty: float
    top_p: float | None
    max_rounds: int
    context_tokens: int
    max_searches: int = 0  # 0: only the rounds limit them
    no_repeat: bool = False  # a query asked before is not searched again


R1_SEARCHER = TagFormat(
    "r1-searcher", "<|begin_of_query|>", "<|end_of_query|>",
    stops=(IM_END, END_OF_TEXT, *_variants("<|end_of_query|>")),
    temperature=0.0, repetition_penalty=1.05, top_p=None, max_rounds=16, context_tokens=40960,
)
ZEROSEARCH = TagFormat(
    "zerosearch", "<search>", "</search>",
    stops=(IM_END, END_OF_TEXT, *_variants("</search>")),
    temperature=0.7, repetition_penalty=1.0, top_p=None, max_rounds=16, context_tokens=40960,
)
SEARCH_O1 = TagFormat(
    "search-o1", "<|begin_search_query|>", "<|end_search_query|>",
    stops=("<|end_search_query|>", ANSWER_CLOSE, IM_END, END_OF_TEXT),
    temperature=0.7, repetition_penalty=1.05, top_p=0.8, max_rounds=15, context_tokens=32768,
    max_searches=10, no_repeat=True,
)
FORMATS = {f.name: f for f in (R1_SEARCHER, ZEROSEARCH, SEARCH_O1)}

R1_PAGES, R1_PAGE_CHARS, R1_SITE = 3, 35_000, "en.wikipedia.org"
R1_SUMMARY_TOKENS = 1024
ZEROSEARCH_HITS = 5
O1_HITS, O1_PAGE_CHARS, O1_WINDOW, O1_MIN_F1 = 10, 50_000, 3_000, 0.20
O1_DOCUMENTS_TOKENS = 2048
DOCUMENTS_ESTIMATE = 600  # tokens a summary adds to the prompt, for budgets made before it exists


def fill(template: str, **values: str) -> str:
    """Fill ``{search_query}``, ``{document}`` and ``{prev_reasoning}`` in one pass (a page may
    itself hold such a slot; it is left as it is)."""
    return _SLOT.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def find_answer(text: str) -> str | None:
    """The last ``<answer>…</answer>`` in ``text`` (an unclosed one at the end counts), or None.
    A ``\\boxed{}`` inside it is unwrapped."""
    found = [m.group(1).strip() for m in _ANSWER.finditer(text)]
    answer = found[-1] if found else ""
    return (find_boxed(answer) or answer) if answer else None


def snippet_window(text: str, snippet: str, window: int = O1_WINDOW) -> str:
    """The part of a page around the sentence most like its search snippet (word F1 above 0.20,
    within the first 50,000 characters), ``window`` characters either side; else its start."""
    text = text[:O1_PAGE_CHARS]
    wanted = _words(snippet)
    best, best_score = "", O1_MIN_F1
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        score = _f1(wanted, _words(sentence))
        if score > best_score:
            best, best_score = sentence, score
    if not best:
        return text[: 2 * window]
    at = text.find(best)
    return text[max(0, at - window) : at + len(best) + window]


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _words(text: str) -> set[str]:
    return set(text.lower().translate(_PUNCTUATION).split())


def _f1(a: set[str], b: set[str]) -> float:
    common = len(a & b)
    return 0.0 if common == 0 else 2 * common / (len(a) + len(b))


def _clean_query(fragment: str) -> str:
    """The query between the tags, as upstream cleans it: cut at a stray special token, quotes,
    ellipses and tabs dropped."""
    fragment = fragment.split("<|")[0]
    return " ".join(re.sub(r"[\"'…\t]", " ", fragment).split())


def _after_think(text: str) -> str:
    cut = text.rfind(THINK_CLOSE)
    return text[cut + len(THINK_CLOSE) :] if cut != -1 else text


class TaggedProtocol:
    """The turn loop every tag protocol shares; subclasses give the layout and the search."""

    format: TagFormat
    side_prompt_default = ""  # the prompt of the summarising step, if the protocol has one

    def __init__(
        self,
        client: SGLangClient,
        main_prompt: str,
        *,
        side_prompt: str | None = None,
        temperature: float | None = None,
        repetition_penalty: float | None = None,
    ) -> None:
        self.client = client
        self.main_prompt = main_prompt
        self.side_prompt = side_prompt or self.side_prompt_default
        self.temperature = self.format.temperature if temperature is None else temperature
        self.repetition_penalty = self.format.repetition_penalty if repetition_penalty is None else repetition_penalty

    @property
    def name(self) -> str:
        return self.format.name

    # ---- what subclasses say ------------------------------------------------------------------

    def header(self, question: str) -> str:
        """The prompt up to the first ``<think>`` of the assistant."""
        raise NotImplementedError

    def after_turn(self, results: str | None, notes: list[str]) -> str:
        """What follows a model turn: its search's results (``results``) and any notes, up to the
        next ``<think>`` of the assistant."""
        raise NotImplementedError

    def search_call(self, query: str, call_id: str) -> Any:
        """The tool call that runs one search."""
        raise NotImplementedError

    def results_of(self, tool: ToolMessage) -> str:
        """The results of a search as the model reads them, when no model step made them."""
        return str(tool.content)

    async def documents(self, messages: list[AnyMessage], tool: ToolMessage) -> tuple[str, dict[str, int]] | None:
        """The model-made text a search's results become (a summary), with the tokens it took;
        None when the layout comes from the results alone."""
        return None

    # ---- the shared loop ----------------------------------------------------------------------

    def estimate_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def estimate_message(self, message: AnyMessage) -> int:
        """Tokens a message adds to the prompt as this protocol renders it (a page that the model
        only reads as a summary costs the summary)."""
        if isinstance(message, ToolMessage) and type(self).documents is not TaggedProtocol.documents:
            return DOCUMENTS_ESTIMATE
        return estimate_tokens(str(message.content))

    def render(self, messages: list[AnyMessage], pending: str | None = None, *, compact: bool = False) -> str:
        """The whole prompt. ``pending`` is the text the latest search's results became this turn
        (model-made, not yet stored); ``compact`` elides all but the latest results."""
        question, lead = "", []
        first_ai = next((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), len(messages))
        for message in messages[:first_ai]:
            if isinstance(message, HumanMessage):
                text = str(message.content)
                question, lead = (text, lead) if not question else (question, [*lead, say.with_answer_tags(text)])
        out = [self.header("\n\n".join([question, *lead]))]
        ai_positions = [i for i, m in enumerate(messages) if isinstance(m, AIMessage)]
        for n, at in enumerate(ai_positions):
            out.append(str(messages[at].content))
            end = ai_positions[n + 1] if n + 1 < len(ai_positions) else len(messages)
            following = messages[at + 1 : end]
            group = [following[i] for i in call_order(following)]
            if not group:
                continue
            tools = [m for m in group if isinstance(m, ToolMessage)]
            notes = [say.with_answer_tags(str(m.content)) for m in group if isinstance(m, HumanMessage)]
            results = None
            if tools:
                latest = n + 1 == len(ai_positions)
                if compact and not latest:
                    results = ELIDED_TOOL_RESULT
                elif latest and pending is not None:
                    results = pending
                else:
                    stored = messages[end].additional_kwargs.get("documents") if end < len(messages) else None
                    results = stored if isinstance(stored, str) else self._shown(tools[0])
            out.append(self.after_turn(results, notes))
        return "".join(out)

    def _shown(self, tool: ToolMessage) -> str:
        content = str(tool.content)
        if tool.status == "error" or content.startswith(FOLDED_LABEL):
            return content  # the error, or the digest a fold made of it
        return self.results_of(tool)

    async def turn(self, messages: list[AnyMessage], budget: TurnBudget) -> Turn:
        tools = _pending_tools(messages)
        made = await self.documents(messages, tools[0]) if tools else None
        pending, extra = made if made is not None else (None, {})
        generation = await self.client.generate(
            self.render(messages, pending, compact=budget.compact),
            max_new_tokens=budget.max_new_tokens,
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
            stop=list(self.format.stops),
            top_p=self.format.top_p,
        )
        turn = self.parse(generation, messages, force_answer=budget.force_answer)
        if pending is not None:
            turn.message.additional_kwargs["documents"] = pending
        for key, value in extra.items():
            turn.usage[key] = turn.usage.get(key, 0) + value
        return turn

    def parse(self, generation: Generation, messages: list[AnyMessage], *, force_answer: bool = False) -> Turn:
        """A completion as a transcript turn: one search, an answer, or notes on what went wrong.

        A stop string the server cut off is put back, as the model wrote it. A forced turn runs no
        search; without an ``<answer>`` its last 200 characters stand in, flagged as untagged.
        """
        fmt = self.format
        text, matched = generation.text, generation.matched_stop
        if isinstance(matched, str) and matched not in (IM_END, END_OF_TEXT) and not text.endswith(matched):
            text += matched
        round_no = sum(isinstance(m, AIMessage) for m in messages)
        call_id = f"r{round_no}-0"
        notes: list[str] = []
        calls: list[Any] = []
        raws: dict[str, str] = {}
        answer: str | None = None
        boxed = False
        if generation.finish_reason == "length":
            notes.append(cut_off_note(generation.completion_tokens))
        elif not text.strip():
            notes.append(EMPTY_TURN_NOTE)
        else:
            searched = isinstance(matched, str) and matched.strip() == fmt.query_close
            found = find_answer(text)
            state, query = self._query(text)
            if state != "none" and (searched or found is None):
                asked = _queries(messages)
                if force_answer:
                    notes.append(say.FORCED_SEARCH_NOTE)
                elif state == "unclosed":
                    notes.append(say.unclosed_query_note(fmt.query_open, fmt.query_close))
                elif state == "empty":
                    notes.append(say.empty_query_note(fmt.query_open, fmt.query_close))
                elif fmt.no_repeat and query in asked:
                    notes.append(say.DUPLICATE_QUERY_NOTE)
                elif fmt.max_searches and len(asked) >= fmt.max_searches:
                    notes.append(say.search_limit_note(fmt.max_searches))
                else:
                    calls.append(self.search_call(query, call_id))
                    raws[call_id] = query
            elif found is not None:
                answer, boxed = found, True
            elif force_answer:
                answer = _after_think(text).strip()[-ANSWER_FALLBACK_CHARS:].strip() or None
            else:
                notes.append(say.no_action_note(fmt.query_open, fmt.query_close))
        message = AIMessage(
            content=text,
            tool_calls=calls,
            additional_kwargs={"call_order": list(raws), "raw_calls": raws} if raws else {},
            response_metadata={"finish_reason": generation.finish_reason},
        )
        usage = {
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
            "cached_tokens": generation.cached_tokens,
        }
        turn = Turn(message, answer=answer, boxed=boxed, notes=notes, finish_reason=generation.finish_reason,
                    usage=usage, context_tokens=generation.prompt_tokens + generation.completion_tokens)
        return turn

    def _query(self, text: str) -> tuple[str, str]:
        """``("none" | "unclosed" | "empty" | "ok", query)`` for the last query tag of a turn."""
        fmt = self.format
        start = text.rfind(fmt.query_open)
        if start == -1:
            return "none", ""
        rest = text[start + len(fmt.query_open) :]
        close = rest.find(fmt.query_close)
        if close == -1:
            return "unclosed", ""
        query = _clean_query(rest[:close])
        return ("ok", query) if query else ("empty", "")

    async def _generate_aside(self, prompt: str, *, max_new_tokens: int, temperature: float) -> Generation | None:
        """A side completion by the same model (a summary); None when it does not fit the context."""
        try:
            return await self.client.generate(
                prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                repetition_penalty=self.repetition_penalty, stop=[IM_END, END_OF_TEXT],
            )
        except ContextLengthError:
            return None


def _pending_tools(messages: list[AnyMessage]) -> list[ToolMessage]:
    """The results that came back after the latest model turn, in call order."""
    last = max((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), default=-1)
    group = messages[last + 1 :]
    return [m for m in (group[i] for i in call_order(group)) if isinstance(m, ToolMessage)]


def _queries(messages: list[AnyMessage]) -> list[str]:
    """The queries searched so far, in order."""
    return [q for m in messages if isinstance(m, AIMessage) for q in (m.additional_kwargs.get("raw_calls") or {}).values()]


def _page_texts(tool: ToolMessage) -> list[tuple[dict[str, Any], str]]:
    """The pages a ``search_pages`` result holds, each with its text."""
    artifact = tool.artifact if isinstance(tool.artifact, dict) else {}
    data = artifact.get("data") if isinstance(artifact.get("data"), dict) else {}
    content = str(tool.content)
    pages = []
    for page in data.get("pages") or []:
        start, end = int(page.get("start", 0)), int(page.get("end", 0))
        if 0 <= start < end <= len(content):
            pages.append((page, content[start:end]))
    return pages


def _query_of(tool: ToolMessage) -> str:
    artifact = tool.artifact if isinstance(tool.artifact, dict) else {}
    return str(artifact.get("raw") or "")


def _chat_user(text: str) -> str:
    """A one-shot ChatML prompt for a side step (no ``<think>`` pre-fill: the model may think)."""
    return f"{IM_START}user\n{text}\n{IM_END}\n{IM_START}assistant\n"


def _usage(generation: Generation) -> dict[str, int]:
    return {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens}


class R1SearcherProtocol(TaggedProtocol):
    """R1-Searcher (``XXsongLALA/Qwen-2.5-7B-base-RAG-RL``)."""

    format = R1_SEARCHER
    side_prompt_default = say.R1_SUMMARY_PROMPT

    def header(self, question: str) -> str:
        return f"{IM_START}system\n{self.main_prompt}{IM_END}\n{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n{THINK_OPEN}"

    def after_turn(self, results: str | None, notes: list[str]) -> str:
        body = f"<|begin_of_documents|>\n{results}\n<|end_of_documents|>\n\n" if results is not None else ""
        body += "\n".join(notes)
        return f"{IM_END}{IM_START}user\n{body}{IM_END}{IM_START}assistant\n{THINK_OPEN}"

    def search_call(self, query: str, call_id: str) -> Any:
        args = {"query": f"{query} site:{R1_SITE}", "top_k": 10, "read": R1_PAGES, "host": R1_SITE,
                "max_chars": R1_PAGE_CHARS}
        return tool_call(name="search_pages", args=args, id=call_id)

    async def documents(self, messages: list[AnyMessage], tool: ToolMessage) -> tuple[str, dict[str, int]] | None:
        """The first on-topic summary of the pages read, by the same model (temperature 0)."""
        if tool.status == "error":
            return str(tool.content), {}
        used: dict[str, int] = {}
        for _, text in _page_texts(tool)[:R1_PAGES]:
            prompt = _chat_user(fill(self.side_prompt, search_query=_query_of(tool), document=text[:R1_PAGE_CHARS]))
            generation = await self._generate_aside(prompt, max_new_tokens=R1_SUMMARY_TOKENS, temperature=0.0)
            if generation is None:
                continue
            for key, value in _usage(generation).items():
                used[key] = used.get(key, 0) + value
            summary = _summary(generation.text)
            if summary and summary.strip(" .").lower() != "none":
                return summary, used
        return say.R1_NO_DOCUMENTS, used


def _summary(text: str) -> str:
    """What follows the summary marker (ours, or upstream's spelling in a user's prompt file)."""
    text = _after_think(text)
    for marker in (say.R1_SUMMARY_MARKER, "[Exacted Content]:"):
        if marker in text:
            return text.rsplit(marker, 1)[1].strip()
    return text.strip()


class ZeroSearchProtocol(TaggedProtocol):
    """ZeroSearch (``Alibaba-NLP/ZeroSearch_wiki_V2_Qwen2.5_7B_Instruct``) on a real search engine."""

    format = ZEROSEARCH

    def header(self, question: str) -> str:
        return f"{IM_START}user\n{say.zerosearch_user(self.main_prompt, question)}{IM_END}\n{IM_START}assistant\n{THINK_OPEN}"

    def after_turn(self, results: str | None, notes: list[str]) -> str:
        block = f"<information>\n{results}\n</information>\n\n" if results is not None else ""
        if not notes:  # results go back inside the assistant's own turn
            return f"{block}{THINK_OPEN}"
        body = block + "\n".join(notes)
        return f"{IM_END}\n{IM_START}user\n{body}{IM_END}\n{IM_START}assistant\n{THINK_OPEN}"

    def search_call(self, query: str, call_id: str) -> Any:
        return tool_call(name="search_pages", args={"query": query, "top_k": ZEROSEARCH_HITS, "read": 0}, id=call_id)

    def results_of(self, tool: ToolMessage) -> str:
        artifact = tool.artifact if isinstance(tool.artifact, dict) else {}
        data = artifact.get("data") if isinstance(artifact.get("data"), dict) else {}
        hits = (data.get("hits") or [])[:ZEROSEARCH_HITS]
        lines = [f"Doc {i}: Title: {h.get('title', '')}\nSnippet: {h.get('snippet', '')}" for i, h in enumerate(hits, 1)]
        return "\n".join(lines) or say.ZEROSEARCH_NO_RESULTS

    def estimate_message(self, message: AnyMessage) -> int:
        if isinstance(message, ToolMessage) and message.status != "error":
            return estimate_tokens(self._shown(message))
        return estimate_tokens(str(message.content))


class SearchO1Protocol(TaggedProtocol):
    """Search-o1 (Qwen3-4B), with its reason-in-documents step by the same model."""

    format = SEARCH_O1
    side_prompt_default = say.SEARCH_O1_DOCUMENTS_PROMPT

    def header(self, question: str) -> str:
        system = self.main_prompt.replace("{max_searches}", str(self.format.max_searches))
        return f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n{THINK_OPEN}"

    def after_turn(self, results: str | None, notes: list[str]) -> str:
        body = f"<|begin_search_result|>{results}<|end_search_result|>" if results is not None else ""
        body += ("\n" if body and notes else "") + "\n".join(notes)
        return f"{IM_END}\n{IM_START}user\n{body}{IM_END}\n{IM_START}assistant\n{THINK_OPEN}"

    def search_call(self, query: str, call_id: str) -> Any:
        args = {"query": query, "top_k": O1_HITS, "read": O1_HITS, "want": 1, "max_chars": O1_PAGE_CHARS}
        return tool_call(name="search_pages", args=args, id=call_id)

    async def documents(self, messages: list[AnyMessage], tool: ToolMessage) -> tuple[str, dict[str, int]] | None:
        """Reason-in-documents: what the page found adds to the reasoning so far."""
        pages = _page_texts(tool) if tool.status != "error" else []
        if not pages:
            return say.SEARCH_O1_NOTHING_FOUND, {}
        page, text = pages[0]
        last = next(m for m in reversed(messages) if isinstance(m, AIMessage))
        reasoning = str(last.content).split(THINK_CLOSE)[0].split(self.format.query_open)[0].strip()
        prompt = _chat_user(fill(
            self.side_prompt, prev_reasoning=reasoning, search_query=_query_of(tool),
            document=snippet_window(text, str(page.get("snippet") or "")),
        ))
        generation = await self._generate_aside(prompt, max_new_tokens=O1_DOCUMENTS_TOKENS, temperature=self.temperature)
        if generation is None:
            return say.SEARCH_O1_NOTHING_FOUND, {}
        return _information(generation.text) or say.SEARCH_O1_NOTHING_FOUND, _usage(generation)


def _information(text: str) -> str:
    """The findings of a reason-in-documents reply: inside ``<information>``, else after
    ``**Final Information**``, else the reply (its thinking left out)."""
    text = _after_think(text)
    if "<information>" in text:
        return text.rsplit("<information>", 1)[1].split("</information>")[0].strip()
    if "**Final Information**" in text:
        return text.rsplit("**Final Information**", 1)[1].strip()
    return text.strip()


PROTOCOLS: dict[str, type[TaggedProtocol]] = {
    "r1-searcher": R1SearcherProtocol,
    "zerosearch": ZeroSearchProtocol,
    "search-o1": SearchO1Protocol,
}
MAIN_PROMPTS = {
    "r1-searcher": say.R1_SYSTEM_PROMPT,
    "zerosearch": say.ZEROSEARCH_INSTRUCTIONS,
    "search-o1": say.SEARCH_O1_SYSTEM_PROMPT,
}

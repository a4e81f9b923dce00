"""More page bodies for bench/read_fixtures.py: API references and tables whose answers need a name.

On these pages the passage that answers a goal sits under something that names it: an API
signature (a Sphinx-style ``<dt>`` before the ``<dd>`` describing it, classes nesting their
methods), a table's header row, a list's lead-in, a function's signature above its docstring.
Each case is ``(goal, answer, name)``: the evidence must hold the answer *and* the name it belongs
to, which lies hundreds of characters before the answer. Registered in the same ``BUILDERS`` as
bench/read_pages.py (after its pages, so their seeds do not change).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from bench.read_pages import BUILDERS, table

if TYPE_CHECKING:
    from bench.read_fixtures import Filler

NamedBuilt = tuple[str, str, list[tuple[str, str, str]], dict[str, Any]]

# Topical prose for a task-scheduling library: what filler paragraphs of an API reference say.
_DOC_TEMPLATES = [
    "The {obj} keeps a reference to the {thing} until the {event}, so the {thing} is never collected early.",
    "Passing a {thing} that was created by another {obj} raises an error at once rather than at the {event}.",
    "When the {event} happens during a {thing}, the {obj} records it and carries on with the next {thing}.",
    "Unlike the older API, the {obj} does not copy the {thing}; callers that mutate it must take a copy first.",
    "A {thing} submitted from inside another {thing} is queued behind it on the same {obj}.",
    "Most programs never need to call this directly: the {obj} does so on every {event}.",
    "The {thing} is checked again after each {event}, which keeps long runs of the {obj} responsive.",
    "Exceptions raised by a {thing} are stored on it and re-raised when its result is read from the {obj}.",
    "Logging of each {event} goes to the taskpool logger at debug level, one line per {thing}.",
    "The {obj} is safe to share between threads; the {thing} it returns is not.",
]
_OBJ = ["pool", "scheduler", "worker", "queue", "executor", "event loop"]
_THING = ["task", "callback", "batch", "future", "job", "handle"]
_EVENT = ["shutdown", "timeout", "retry", "cancellation", "context switch", "drain", "restart"]


def _doc_sentence(rng: random.Random) -> str:
    return rng.choice(_DOC_TEMPLATES).format(obj=rng.choice(_OBJ), thing=rng.choice(_THING),
                                             event=rng.choice(_EVENT))


def _doc_paras(rng: random.Random, n: int) -> str:
    return "".join("<p>" + escape(" ".join(_doc_sentence(rng) for _ in range(rng.randint(2, 4)))) + "</p>"
                   for _ in range(n))


def _signature(module: str, name: str, params: Sequence[str], kind: str = "") -> str:
    """A Sphinx-style ``<dt>``: spans for the prefix, the name and each parameter, a pilcrow link."""
    prefix = (f'<em class="property"><span class="pre">{kind}</span><span class="w"> </span></em>'
              if kind else "")
    prename = f'<span class="sig-prename descclassname"><span class="pre">{module}</span></span>' if module else ""
    args = ", ".join(f'<em class="sig-param"><span class="n"><span class="pre">{escape(p)}</span></span></em>'
                     for p in params)
    anchor = f"{module}{name}"
    return (f'<dt class="sig sig-object py" id="{anchor}">{prefix}{prename}'
            f'<span class="sig-name descname"><span class="pre">{name}</span></span>'
            f'<span class="sig-paren">(</span>{args}<span class="sig-paren">)</span>'
            f'<a class="headerlink" href="#{anchor}" title="Link to this definition">\u00b6</a></dt>')


def _entry(signature: str, body: str, kind: str = "function") -> str:
    return f'<dl class="py {kind}">{signature}<dd>{body}</dd></dl>'


def _example(code: str) -> str:
    return f'<div class="highlight-python3 notranslate"><div class="highlight"><pre>{escape(code)}</pre></div></div>'


def _heading(level: int, text: str) -> str:
    anchor = text.lower().replace(" ", "-")
    return (f'<section id="{anchor}"><h{level}>{escape(text)}<a class="headerlink" href="#{anchor}" '
            f'title="Link to this heading">\u00b6</a></h{level}>')


def _named(fn: Any) -> Any:
    BUILDERS[fn.__name__] = fn
    return fn


@_named
def api_reference_sphinx(f: Filler, r: random.Random) -> NamedBuilt:
    """A module reference in Sphinx's markup: many functions, a class with nested methods."""
    planted = {
        "cancel_all": (["pool", "*", "wait=False"], [
            _doc_paras(r, 4),
            "<p>Tasks that are still queued are dropped without running. Tasks that are already running are "
            "interrupted at their next await point, and their futures end in the cancelled state.</p>",
            _doc_paras(r, 1), _example("await taskpool.cancel_all(pool, wait=True)"),
        ]),
        "chdir": (["path"], [
            "<p>Context manager that switches the working directory of the whole process for the duration of the "
            "block. " + escape(" ".join(_doc_sentence(r) for _ in range(3))) + "</p>",
            _doc_paras(r, 3),
            "<p>Because the working directory is global state, it is not safe to use from several threads or "
            "tasks at once; it restores the previous directory on exit, even after an exception.</p>",
            '<div class="versionadded"><p><span class="versionmodified added">Added in version 2.4.</span></p></div>',
        ]),
        "throttle": (["limit", "per=1.0"], [
            _doc_paras(r, 4),
            "<p>Wraps a coroutine function so that at most <em>limit</em> calls start in any window of "
            "<em>per</em> seconds; extra calls wait their turn in arrival order.</p>",
            _doc_paras(r, 2),
        ]),
    }
    entries = []
    names = [f"{w}_{i}" for i, w in enumerate(r.choice(["gather", "spawn", "sleep", "wait", "shield", "timeout",
                                                         "to_thread", "as_completed"]) for _ in range(26))]
    for i, name in enumerate(names):
        body = _doc_paras(r, r.randint(2, 4)) + (_example(f"taskpool.{name}(x)") if i % 3 == 0 else "")
        entries.append(_entry(_signature("taskpool.", name, ["x", f"timeout={r.randint(1, 60)}"]), body))
        if i in (5, 13, 21):
            key = {5: "cancel_all", 13: "chdir", 21: "throttle"}[i]
            params, parts = planted[key]
            entries.append(_entry(_signature("taskpool.", key, params), "".join(parts)))
    methods = []
    for j in range(8):
        methods.append(_entry(_signature("", f"method_{j}", ["self"]), _doc_paras(r, r.randint(1, 3)), "method"))
        if j == 5:
            methods.append(_entry(_signature("", "drain", ["timeout=None"]),
                                  _doc_paras(r, 4) + "<p>Waits for queued and running tasks to finish. If the "
                                  "timeout expires first, it returns the list of unfinished tasks instead of "
                                  "raising.</p>" + _doc_paras(r, 1), "method"))
    pool_class = _entry(_signature("taskpool.", "Pool", ["workers=4"], kind="class"),
                        _doc_paras(r, 3) + _example("pool = taskpool.Pool(workers=8)") + "".join(methods), "class")
    body = ('<div class="body" role="main"><section id="module-taskpool"><h1>taskpool \u2014 Tasks and pools'
            '<a class="headerlink" href="#module-taskpool">\u00b6</a></h1>' + _doc_paras(r, 2)
            + _heading(2, "Functions") + "<p>The module defines the following functions:</p>"
            + "".join(entries[: len(entries) // 2]) + "</section>"
            + _heading(2, "More functions") + "".join(entries[len(entries) // 2 :]) + "</section>"
            + _heading(2, "Pools") + pool_class + "</section></section></div>")
    return ("taskpool \u2014 Tasks and pools \u2014 taskpool 3.2 documentation", body, [
        ("What happens to running tasks when taskpool cancel_all is called?",
         "interrupted at their next await point", "taskpool.cancel_all(pool, *, wait=False)"),
        ("Is it safe to switch the process working directory with taskpool from several threads?",
         "not safe to use from several threads", "taskpool.chdir(path)"),
        ("Which taskpool function limits how many calls start per second?",
         "at most limit calls start in any window", "taskpool.throttle(limit, per=1.0)"),
        ("What does draining a taskpool Pool return when the timeout expires?",
         "returns the list of unfinished tasks", "drain(timeout=None)"),
    ], {"site": "taskpool docs", "comments": 0, "sidebar": False})


@_named
def glossary_long_definitions(f: Filler, r: random.Random) -> NamedBuilt:
    """A glossary: terms with definitions of several paragraphs, the answer far below its term."""
    terms = [f"{f.words(1).lower()} {f.words(1).lower()}" for _ in range(40)]
    planted = {
        11: ("write-ahead log", "<p>Before a page is changed on disk, the change is appended to this journal "
             "and flushed, so that after a crash the database replays it. Checkpoints truncate the journal once "
             "every change in it has reached the data files.</p>"),
        29: ("tombstone", "<p>Instead of erasing a row at once, a delete writes a marker that hides the row "
             "from readers; compaction removes both after the grace period of ten days.</p>"),
    }
    items = []
    for i, term in enumerate(terms):
        name, answer = planted.get(i, (term, ""))
        defn = f.paras("tech", r.randint(2, 3)) + answer + f.paras("tech", r.randint(0, 1))
        items.append(f'<dt id="term-{i}">{escape(name)}<a class="headerlink" href="#term-{i}">\u00b6</a></dt>'
                     f"<dd>{defn}</dd>")
    body = "<h1>Glossary</h1>" + f.paras("tech", 1) + '<dl class="glossary simple">' + "".join(items) + "</dl>"
    return ("Glossary \u2014 Ledgerly storage engine", body, [
        ("When does compaction remove deleted rows in the Ledgerly storage engine?",
         "grace period of ten days", "tombstone"),
        ("What truncates the journal of changes in the Ledgerly storage engine?", "Checkpoints truncate the journal",
         "write-ahead log"),
    ], {"site": "Ledgerly docs", "comments": 0, "sidebar": False})


@_named
def support_matrix_table(f: Filler, r: random.Random) -> NamedBuilt:
    """A long release table: the row answers only with its header, cut far above it."""
    rows = []
    for i in range(260):
        major, minor = divmod(i, 20)
        released = f"20{10 + major}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        ends = f"20{12 + major}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        rows.append((f"{major + 1}.{minor}", released, ends, f"3.{r.randint(6, 12)}", r.choice(["LTS", "regular"])))
    rows[217] = ("11.17", "2020-05-04", "2027-11-30", "3.9", "LTS")
    body = ("<h1>Release support</h1>" + f.paras("tech", 2)
            + table(["Version", "Released", "End of security support", "Minimum Python", "Track"], rows,
                    caption="Table 2. Supported and past releases") + f.paras("tech", 2))
    return ("Release support \u2014 Ledgerly", body, [
        ("When does security support for Ledgerly version 11.17 end?", "11.17 | 2020-05-04 | 2027-11-30",
         "End of security support"),
    ], {"site": "Ledgerly docs", "comments": 0})


@_named
def error_codes_lists(f: Filler, r: random.Random) -> NamedBuilt:
    """Long lists of error codes, one per endpoint, each named only by the sentence leading into it."""
    parts = []
    meanings = {("/v2/upload", 217): "E217: the file is larger than the 50 MB limit",
                ("/v2/export", 217): "E217: the export is still being prepared, try again later"}
    for endpoint in ["/v2/login", "/v2/upload", "/v2/search", "/v2/export"]:
        items = [escape(meanings.get((endpoint, 200 + k), f"E{200 + k}: {f.sentence('tech')}")) for k in range(45)]
        parts.append(f"<p>Errors returned by the {endpoint} endpoint:</p><ul>" + "".join(f"<li>{i}</li>" for i in items)
                     + "</ul>" + f.paras("tech", 1))
    body = "<h1>Error codes</h1>" + f.paras("tech", 1) + "".join(parts)
    return ("Error codes \u2014 Ledgerly API", body, [
        ("What does error E217 mean for the /v2/upload endpoint?", "larger than the 50 MB limit",
         "Errors returned by the /v2/upload endpoint:"),
    ], {"site": "Ledgerly docs", "comments": 0})


@_named
def source_listing(f: Filler, r: random.Random) -> NamedBuilt:
    """A source file shown in a ``<pre>`` (a "view source" page): a long docstring under its signature."""
    funcs = []
    for i in range(30):
        doc = "\n".join(f"    {_doc_sentence(r)}" for _ in range(r.randint(2, 5)))
        funcs.append(f"def helper_{i}(value, *, strict=False):\n    \"\"\"Helper {i}.\n\n{doc}\n    \"\"\"\n"
                     f"    return value\n")
        if i == 17:
            doc = "\n\n".join("\n".join(f"    {_doc_sentence(r)}" for _ in range(4)) for _ in range(3))
            funcs.append("def parse_range(header: str, size: int) -> tuple[int, int]:\n    \"\"\"Parse an HTTP "
                         f"Range header.\n\n{doc}\n\n    A suffix range such as bytes=-500 means the last 500 bytes "
                         "of the body;\n    an unsatisfiable range raises RangeError.\n    \"\"\"\n    ...\n")
    code = "import re\n\n\n" + "\n\n".join(funcs)
    body = f"<h1>Source code for ledgerly.http</h1><div class=\"highlight\"><pre>{escape(code)}</pre></div>"
    return ("ledgerly.http \u2014 source", body, [
        ("What does a suffix range like bytes=-500 mean when ledgerly parses a Range header?",
         "means the last 500 bytes", "def parse_range(header: str, size: int)"),
    ], {"site": "Ledgerly docs", "comments": 0, "sidebar": False})

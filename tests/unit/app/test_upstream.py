"""app/upstream: the upstream prompts and evaluation sets, fetched, extracted with ast, pinned.

Everything here is SYNTHETIC: Python modules and a JSONL file shaped like the upstream ones (same
paths and constant names, our own made-up text), served from 127.0.0.1, with their digest table
injected. No upstream text is in this repository.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fathom.app import services, upstream
from fathom.app.upstream import DatasetSpec, TextSpec
from fathom.errors import ConfigError
from fathom.protocols.prompts import DEFAULT_SEARCH_PROMPT, DEFAULT_SYNTH_PROMPT
from fathom.protocols.prompts.evidence import EVIDENCE_USER_PROMPT
from fathom.settings import Settings
from tests.fakes.server import LoopbackServer

COMMIT = upstream.UPSTREAM_COMMIT

# ---- the synthetic upstream tree ------------------------------------------------------------------

SCHEMAS = [
    {"name": "search_urls", "description": "Synthetic search tool.",
     "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
    {"name": "query_url", "description": "Synthetic reading tool.",
     "parameters": {"type": "object", "properties": {"url": {"type": "string"}, "goal": {"type": "string"}},
                    "required": ["url", "goal"]}},
]
FATHOM_SCHEMAS = [{**SCHEMAS[0], "description": "Synthetic eval search tool."}, SCHEMAS[1]]
LEGACY_SCHEMAS = [{"name": "web_search", "description": "Synthetic legacy tool.", "parameters": {}}]

# What ast must extract: the whitespace quirks of a triple-quoted class attribute (a leading
# newline, indented lines, a trailing space, a backslash-joined line, "{{}}" escapes, a trailing
# "\n    "), and the other constants.
EXPECTED: dict[str, str] = {
    "search_system": (
        "\n    Synthetic seeker prompt. \n    Tools in JSON: \n```json\n{func_schemas}\n```\n"
        "    Joined one.     Joined two.\n    Box it: \\boxed{{}} or \\[ \\boxed{{7C}} \\].\n    "
    ),
    "search_schemas": repr(SCHEMAS),
    "search_schemas_fathom": repr(FATHOM_SCHEMAS),
    "search_schemas_legacy": repr(LEGACY_SCHEMAS),
    "synth_system": "Synthetic synthesizer prompt.\nPlan, then report. {not a slot}\n",
    "synth_lead_in": "Synthetic lead-in sentence.",
    "evidence_system": "Synthetic extractor system prompt.",
    "evidence_user": "Page:\n{webpage_content}\nGoal:\n{goal}\nRational:\nEvidence:\nSummary:\n",
    # the baselines: a stripped class attribute, implicitly joined literals, the literal head of a
    # local f-string, an f-string without fields, an indented format template
    "r1_system": "Synthetic R1 prompt.\n    <|begin_of_query|> q <|end_of_query|>",
    "r1_summary": "Synthetic summary of {document} for {search_query}.\n[Exacted Content]:",
    "zerosearch_instructions": "Synthetic ZeroSearch instructions: <search> q </search>.",
    "search_o1_system": "Synthetic o1 prompt, limited to 16 searches.\n<answer></answer>",
    "search_o1_documents": "\n    Synthetic reasoning over {document} for {search_query} after {prev_reasoning}.\n    ",
}
# The search prompt as the model saw it: str.format with the schema list (its Python repr).
RENDERED_SEARCH = EXPECTED["search_system"].format(func_schemas=SCHEMAS)

EXECUTES = 'import pathlib\npathlib.Path({marker!r}).write_text("executed")\n'

SOURCES: dict[str, str] = {
    "agents/inference/re_call.py": EXECUTES + r'''
class ReCall():
    sys_prompt = """
    Synthetic seeker prompt. 
    Tools in JSON: \n```json\n{func_schemas}\n```
    Joined one. \
    Joined two.
    Box it: \\boxed{{}} or \\[ \\boxed{{7C}} \\].
    """

    def init_prompt(self):
        return self.sys_prompt.format(func_schemas=[])
''',
    "inference.py": EXECUTES + f'''
from typing import Any, Dict, List
RECALL_SCHEMAS: List[Dict[str, Any]] = {SCHEMAS!r}


def build_summary_prompt(question, transcript, tool_calls):
    tool_str = str(tool_calls)
    return (
        "Synthetic lead-in sentence.\\n\\n"
        f"Question:\\n{{question}}\\n\\n"
        f"Trace:\\n{{transcript}}\\n\\n{{tool_str}}"
    )
''',
    "eval_search.py": EXECUTES + f'''
RECALL_PRESETS = {{
    "legacy": ("from x import a", {LEGACY_SCHEMAS!r}),
    "fathom": ("from x import b", {FATHOM_SCHEMAS!r}),
}}
''',
    "prompts.py": EXECUTES + 'DEEPRESEARCH_SYS_PROMPT = """Synthetic synthesizer prompt.\nPlan, then report. {not a slot}\n"""\n',
    "agents/inference/r1_searcher.py": EXECUTES + '''
class R1Searcher:
    SYSTEM_PROMPT = """
    Synthetic R1 prompt.
    <|begin_of_query|> q <|end_of_query|>
    """.strip()
    SUMMARY_PROMPT = (
        "Synthetic summary of {document} "
        "for {search_query}.\\n[Exacted Content]:"
    )
''',
    "agents/inference/zerosearch.py": EXECUTES + '''
class ZeroSearchInference:
    def _build_initial_prompt(self, question):
        user_msg = (
            "Synthetic ZeroSearch instructions: "
            "<search> q </search>. "
            f"Question: {question}\\n"
        )
        return user_msg
''',
    "agents/inference/search_o1.py": EXECUTES + '''
class O1Searcher:
    get_webpage_to_reasonchain_instruction = """
    Synthetic reasoning over {document} for {search_query} after {prev_reasoning}.
    """
    sys_prompt_multiqa = (
        "Synthetic o1 prompt, "
        f"limited to 16 searches.\\n"
        "<answer></answer>"
    )
''',
    "serving/web_agents/compressor.py": EXECUTES + '''
EXTRACTOR_SYS_PROMPT = (
    "Synthetic extractor "
    "system prompt."
)
EXTRACTOR_PROMPT_TEMPLATE = """Page:\n{webpage_content}\nGoal:\n{goal}\nRational:\nEvidence:\nSummary:\n"""
''',
}
CONSTANTS: dict[str, tuple[str, str, str, str]] = {  # name -> (path, constant, render, cut)
    "search_system": ("agents/inference/re_call.py", "ReCall.sys_prompt", "str", ""),
    "search_schemas": ("inference.py", "RECALL_SCHEMAS", "repr", ""),
    "search_schemas_fathom": ("eval_search.py", "RECALL_PRESETS['fathom'][1]", "repr", ""),
    "search_schemas_legacy": ("eval_search.py", "RECALL_PRESETS['legacy'][1]", "repr", ""),
    "synth_system": ("prompts.py", "DEEPRESEARCH_SYS_PROMPT", "str", ""),
    "synth_lead_in": ("inference.py", "build_summary_prompt()", "head", "\n\nQuestion:\n"),
    "evidence_system": ("serving/web_agents/compressor.py", "EXTRACTOR_SYS_PROMPT", "str", ""),
    "evidence_user": ("serving/web_agents/compressor.py", "EXTRACTOR_PROMPT_TEMPLATE", "str", ""),
    "r1_system": ("agents/inference/r1_searcher.py", "R1Searcher.SYSTEM_PROMPT", "str", ""),
    "r1_summary": ("agents/inference/r1_searcher.py", "R1Searcher.SUMMARY_PROMPT", "str", ""),
    "zerosearch_instructions": ("agents/inference/zerosearch.py", "ZeroSearchInference._build_initial_prompt.user_msg",
                                "head", " Question: "),
    "search_o1_system": ("agents/inference/search_o1.py", "O1Searcher.sys_prompt_multiqa", "str", ""),
    "search_o1_documents": ("agents/inference/search_o1.py", "O1Searcher.get_webpage_to_reasonchain_instruction",
                            "str", ""),
}
DATASET_ROWS = [
    {"question": "Synthetic question one?", "answer": "one", "id": "tiny-0"},
    {"question": "Synthetic question two?", "answer": 2, "id": 1},
    {"question": "Line\u2028separator inside a string?", "answer": "yes", "id": "tiny-2"},
]
DATASET = ("\n".join(json.dumps(row, ensure_ascii=False) for row in DATASET_ROWS) + "\n").encode()


def sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def prompt_table() -> dict[str, TextSpec]:
    return {
        name: TextSpec(path, constant, sha(EXPECTED[name]), render, cut)  # type: ignore[arg-type]
        for name, (path, constant, render, cut) in CONSTANTS.items()
    }


def dataset_table() -> dict[str, DatasetSpec]:
    return {"tiny": DatasetSpec("eval_datasets/tiny.jsonl", sha(DATASET), len(DATASET_ROWS))}


def upstream_files(marker: Path) -> dict[str, bytes]:
    """``<commit>/<path>`` -> bytes of the synthetic upstream tree."""
    files = {f"{COMMIT}/{path}": text.replace("{marker!r}", repr(str(marker))).encode() for path, text in SOURCES.items()}
    files[f"{COMMIT}/eval_datasets/tiny.jsonl"] = DATASET
    return files


class FakeUpstream(LoopbackServer):
    """GitHub's raw host on 127.0.0.1: ``files`` by path, ``redirects`` path -> location."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.redirects: dict[str, str] = {}
        self.hits: Counter[str] = Counter()
        super().__init__(Starlette(routes=[Route("/{path:path}", self._serve)]))

    async def _serve(self, request: Request) -> Response:
        path = request.path_params["path"]
        self.hits[path] += 1
        if path in self.redirects:
            return RedirectResponse(self.redirects[path], status_code=302)
        if path not in self.files:
            return Response("not found", status_code=404)
        return Response(self.files[path], media_type="text/plain")


def table_json() -> str:
    """The injected tables, for a CLI subprocess (see tests/e2e/test_prompts_cli.py)."""
    return json.dumps({
        "prompts": {name: vars(spec) for name, spec in prompt_table().items()},
        "datasets": {name: vars(spec) for name, spec in dataset_table().items()},
    })


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "executed.marker"


@pytest.fixture
def fake_upstream(marker: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    monkeypatch.setattr(upstream, "PROMPTS", prompt_table())
    monkeypatch.setattr(upstream, "DATASETS", dataset_table())
    with FakeUpstream(upstream_files(marker)) as server:
        yield server


# ---- prompts --------------------------------------------------------------------------------------


def test_synthetic_modules_would_leave_the_marker_if_run(marker: Path) -> None:
    """The guard of the next test is real: executing a synthetic module writes the marker."""
    source = upstream_files(marker)[f"{COMMIT}/prompts.py"]
    exec(compile(source, "prompts.py", "exec"), {})  # noqa: S102 - our own synthetic module
    assert marker.exists()


def test_fetch_extracts_every_text_byte_exact_and_never_runs_the_files(fake_upstream, marker, private_data_dir):
    installed = upstream.fetch_prompts(fake_upstream.url)

    assert {item.name for item in installed} == set(EXPECTED)
    assert not marker.exists(), "a fetched file was executed"
    folder = private_data_dir / "fathom" / "prompts" / COMMIT
    assert upstream.prompts_dir() == folder
    for name, text in EXPECTED.items():
        assert (folder / f"{name}.txt").read_bytes() == text.encode("utf-8")
        assert upstream.read_prompt(name) == text
    # one download per file, however many constants it holds
    assert fake_upstream.hits[f"{COMMIT}/inference.py"] == 1
    assert all(item.state == "ok" for item in upstream.installed_prompts())


def test_nothing_is_installed_before_a_fetch(fake_upstream):
    assert [item.state for item in upstream.installed_prompts()] == ["missing"] * len(EXPECTED)
    assert upstream.read_prompt("search_system") is None
    assert not upstream.trained_installed(upstream.SEARCH_PROMPT_TEXTS)
    with pytest.raises(ConfigError, match="unknown prompt 'nope'"):
        upstream.read_prompt("nope")


def test_a_changed_text_is_refused_and_nothing_is_stored(fake_upstream):
    path = f"{COMMIT}/prompts.py"
    fake_upstream.files[path] = fake_upstream.files[path].replace(b"Plan, then", b"Plan and then")
    changed = sha(EXPECTED["synth_system"].replace("Plan, then", "Plan and then"))

    with pytest.raises(ConfigError) as info:
        upstream.fetch_prompts(fake_upstream.url)

    message = str(info.value)
    assert "\n" not in message
    assert "synth_system" in message and changed in message and sha(EXPECTED["synth_system"]) in message
    assert not upstream.prompts_dir().exists()


def test_a_failed_fetch_keeps_the_texts_installed_before(fake_upstream):
    upstream.fetch_prompts(fake_upstream.url)
    fake_upstream.files[f"{COMMIT}/inference.py"] = b"RECALL_SCHEMAS = []\n"
    with pytest.raises(ConfigError, match="search_schemas"):
        upstream.fetch_prompts(fake_upstream.url)
    assert all(item.state == "ok" for item in upstream.installed_prompts())
    assert sorted(p.name for p in upstream.prompts_dir().parent.iterdir()) == [COMMIT]  # no staging left


def test_a_stored_text_edited_later_is_refused_when_read(fake_upstream):
    upstream.fetch_prompts(fake_upstream.url)
    (upstream.prompts_dir() / "synth_system.txt").write_text("edited\n")
    assert {i.name: i.state for i in upstream.installed_prompts()}["synth_system"] == "changed"
    with pytest.raises(ConfigError, match="installed prompt synth_system .* has changed"):
        upstream.read_prompt("synth_system")


def test_a_redirect_to_another_host_is_refused(fake_upstream):
    fake_upstream.redirects[f"{COMMIT}/prompts.py"] = "http://example.invalid/prompts.py"
    with pytest.raises(ConfigError, match="refused a redirect .* to another host: http://example.invalid/prompts.py"):
        upstream.fetch_prompts(fake_upstream.url)
    assert not upstream.prompts_dir().exists()


def test_a_redirect_on_the_same_host_is_followed(fake_upstream):
    real = f"{COMMIT}/prompts.py"
    fake_upstream.files["moved/prompts.py"] = fake_upstream.files[real]
    fake_upstream.redirects[real] = "/moved/prompts.py"
    upstream.fetch_prompts(fake_upstream.url)
    assert upstream.read_prompt("synth_system") == EXPECTED["synth_system"]


def test_http_errors_and_oversized_files_are_one_line(fake_upstream):
    del fake_upstream.files[f"{COMMIT}/prompts.py"]
    with pytest.raises(ConfigError, match=r"cannot download .*/prompts.py: HTTP 404"):
        upstream.fetch_prompts(fake_upstream.url)
    with pytest.raises(ConfigError, match="larger than 10 bytes"):
        upstream.download(f"{fake_upstream.url}/{COMMIT}/inference.py", max_bytes=10)


def test_extraction_refuses_what_is_not_a_literal(marker):
    source = b"import os\nX = os.getcwd()\nY = 'a' + 'b'\nZ = 3\nclass C:\n    pass\n"
    with pytest.raises(ConfigError, match="X in m.py is not a literal"):
        upstream.extract_text(source, TextSpec("m.py", "X", ""))
    with pytest.raises(ConfigError, match="Y in m.py is not a literal"):
        upstream.extract_text(source, TextSpec("m.py", "Y", ""))
    with pytest.raises(ConfigError, match="Z in m.py is not a string"):
        upstream.extract_text(source, TextSpec("m.py", "Z", ""))
    with pytest.raises(ConfigError, match="C.W in m.py: not found"):
        upstream.extract_text(source, TextSpec("m.py", "C.W", ""))
    with pytest.raises(ConfigError, match="not Python source"):
        upstream.extract_text(b"def (:\n", TextSpec("m.py", "X", ""))


async def test_trained_baseline_prompts_are_the_upstream_texts_and_their_summary_steps(fake_upstream):
    from fathom.protocols.tagged import R1SearcherProtocol, SearchO1Protocol

    for protocol in ("legacy", "r1-searcher", "zerosearch", "search-o1"):
        assert services.search_prompt_choice(Settings(search_protocol=protocol)) == "builtin"
    upstream.fetch_prompts(fake_upstream.url)
    legacy = services.search_prompt_of(Settings(search_protocol="legacy"))
    assert legacy.text == EXPECTED["search_system"].format(func_schemas=LEGACY_SCHEMAS)
    for protocol, name in (("r1-searcher", "r1_system"), ("zerosearch", "zerosearch_instructions"),
                           ("search-o1", "search_o1_system")):
        prompt = services.search_prompt_of(Settings(search_protocol=protocol))
        assert prompt.text == EXPECTED[name] and prompt.source.startswith("trained")
    async with services.build_services(Settings(search_protocol="r1-searcher", no_cache=True)) as built:
        r1 = built.protocol
    assert isinstance(r1, R1SearcherProtocol) and r1.side_prompt == EXPECTED["r1_summary"]
    assert r1.header("Q?").startswith("<|im_start|>system\nSynthetic R1 prompt.\n    <|begin_of_query|>")
    async with services.build_services(Settings(search_protocol="search-o1", prompt="trained", no_cache=True)) as built:
        o1 = built.protocol
    assert isinstance(o1, SearchO1Protocol) and o1.side_prompt == EXPECTED["search_o1_documents"]
    async with services.build_services(Settings(search_protocol="zerosearch", no_cache=True)) as built:
        zero = built.protocol
    # upstream's user turn, byte for byte: its instructions, then " Question: {question}\n"
    assert zero.header("Q?") == ("<|im_start|>user\nSynthetic ZeroSearch instructions: <search> q </search>. "
                                 "Question: Q?\n<|im_end|>\n<|im_start|>assistant\n<think>")
    # builtin stays available
    assert services.search_prompt_of(Settings(search_protocol="zerosearch", prompt="builtin")).source == "builtin"


def test_format_templates_fill_only_their_slots():
    assert upstream.fill_format_template("a {x} {{}}", {"x": "[1]"}, "t") == "a [1] {}"
    with pytest.raises(ConfigError, match="unexpected slots: y"):
        upstream.fill_format_template("{x}{y}", {"x": ""}, "t")
    assert upstream.as_replace_template("{goal} {{}}", ("goal",), "t") == "{goal} {}"


# ---- settings -> prompts (app/services) -----------------------------------------------------------


def test_default_is_builtin_until_fetched_then_trained(fake_upstream):
    settings = Settings()
    assert services.search_prompt_choice(settings) == "builtin"
    assert services.search_prompt_of(settings) is DEFAULT_SEARCH_PROMPT
    assert services.synth_prompt_of(settings) is DEFAULT_SYNTH_PROMPT

    upstream.fetch_prompts(fake_upstream.url)

    prompt = services.search_prompt_of(settings)
    assert services.search_prompt_choice(settings) == "trained"
    assert prompt.text == RENDERED_SEARCH and prompt.render("ignored") == RENDERED_SEARCH
    assert prompt.sha256 == sha(RENDERED_SEARCH) and prompt.source.startswith("trained")
    assert services.synth_prompt_of(settings).text == EXPECTED["synth_system"]
    assert services.research_config(settings).synth_prompt == EXPECTED["synth_system"]
    # the trained system prompt comes with the trained first sentence of the user turn
    assert services.research_config(settings).synth_lead_in == "Synthetic lead-in sentence." == EXPECTED["synth_lead_in"]
    assert services.research_config(Settings(synth_prompt="builtin")).synth_lead_in == ""
    # builtin stays available, and the chat protocol keeps ours by default
    assert services.search_prompt_of(Settings(prompt="builtin")) is DEFAULT_SEARCH_PROMPT
    assert services.search_prompt_choice(Settings(search_protocol="chat")) == "builtin"


def test_prompt_digests_name_the_texts_a_run_uses(fake_upstream):
    assert services.prompt_digests(Settings())["search"] == {"source": "builtin", "sha256": DEFAULT_SEARCH_PROMPT.sha256}
    upstream.fetch_prompts(fake_upstream.url)
    digests = services.prompt_digests(Settings())
    assert digests["search"]["sha256"] == sha(RENDERED_SEARCH)
    assert digests["synthesizer"]["sha256"] == sha(EXPECTED["synth_system"])


def test_trained_needs_a_fetch_and_the_fathom_protocol(fake_upstream):
    with pytest.raises(ConfigError, match="run 'fathom prompts fetch'"):
        services.search_prompt_of(Settings(prompt="trained"))
    with pytest.raises(ConfigError, match="--synth-prompt trained"):
        services.synth_prompt_of(Settings(synth_prompt="trained"))
    upstream.fetch_prompts(fake_upstream.url)
    with pytest.raises(ConfigError, match="needs --search-protocol fathom"):
        services.search_prompt_of(Settings(prompt="trained", search_protocol="chat"))


def test_a_prompt_file_is_read_byte_for_byte(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes(b"\nMine {func_schemas}\r\n    ")
    prompt = services.search_prompt_of(Settings(prompt=str(path)))
    assert prompt.text == "\nMine {func_schemas}\r\n    " and prompt.source == str(path)
    with pytest.raises(ConfigError, match="--synth-prompt: cannot read prompt file"):
        services.synth_prompt_of(Settings(synth_prompt=str(tmp_path / "missing.txt")))


def test_old_prompt_file_names_still_work(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("x")
    config = tmp_path / "c.toml"
    config.write_text(f'prompt_file = "{path}"\n')
    assert Settings.load(config_file=config, environ={}).prompt == str(path)
    assert Settings.load(environ={"FATHOM_SYNTH_PROMPT_FILE": str(path)}).synth_prompt == str(path)
    assert Settings.load(environ={"FATHOM_PROMPT": "trained", "FATHOM_PROMPT_FILE": str(path)}).prompt == "trained"


def test_evidence_prompts_follow_the_search_prompt(fake_upstream):
    assert services.evidence_prompts_of(Settings())[1] == EVIDENCE_USER_PROMPT
    upstream.fetch_prompts(fake_upstream.url)
    system, user = services.evidence_prompts_of(Settings())
    assert (system, user) == (EXPECTED["evidence_system"], EXPECTED["evidence_user"])
    assert services.evidence_prompts_of(Settings(prompt="builtin"))[1] == EVIDENCE_USER_PROMPT


def test_the_default_base_url_is_the_pinned_upstream():
    assert Settings().prompts_base_url == upstream.DEFAULT_BASE_URL
    assert upstream.raw_url(upstream.DEFAULT_BASE_URL, "prompts.py") == (
        f"https://raw.githubusercontent.com/FractalAIResearchLabs/Fathom-DeepResearch/{COMMIT}/prompts.py"
    )


# ---- evaluation sets ------------------------------------------------------------------------------


def test_dataset_fetch_checks_digest_and_rows(fake_upstream, private_data_dir):
    item = upstream.fetch_dataset("tiny", fake_upstream.url)
    assert item.rows == 3 and item.path.read_bytes() == DATASET
    assert item.path == private_data_dir / "fathom" / "datasets" / COMMIT / "tiny.jsonl"
    [listed] = upstream.installed_datasets()
    assert (listed.state, listed.rows, listed.sha256) == ("ok", 3, sha(DATASET))


def test_a_changed_dataset_is_refused(fake_upstream):
    fake_upstream.files[f"{COMMIT}/eval_datasets/tiny.jsonl"] = DATASET + b'{"question": "extra?", "answer": "x"}\n'
    with pytest.raises(ConfigError, match="upstream data set tiny .* has changed: sha256 [0-9a-f]{64}, expected"):
        upstream.fetch_dataset("tiny", fake_upstream.url)
    assert not upstream.dataset_file("tiny").exists()
    assert upstream.installed_datasets()[0].state == "missing"


def _pinned(monkeypatch: pytest.MonkeyPatch, data: bytes, rows: int) -> None:
    monkeypatch.setattr(upstream, "DATASETS", {"tiny": DatasetSpec("eval_datasets/tiny.jsonl", sha(data), rows)})


def test_dataset_rows_are_validated(fake_upstream, monkeypatch):
    bad = b'{"question": "q?", "answer": "a"}\n{"question": "no answer"}\n'
    fake_upstream.files[f"{COMMIT}/eval_datasets/tiny.jsonl"] = bad
    _pinned(monkeypatch, bad, 2)
    with pytest.raises(ConfigError, match="data set tiny, line 2: not an object with question and answer"):
        upstream.fetch_dataset("tiny", fake_upstream.url)
    _pinned(monkeypatch, DATASET, 4)
    fake_upstream.files[f"{COMMIT}/eval_datasets/tiny.jsonl"] = DATASET
    with pytest.raises(ConfigError, match="has 3 rows, expected 4"):
        upstream.fetch_dataset("tiny", fake_upstream.url)
    with pytest.raises(ConfigError, match="unknown data set 'nope'"):
        upstream.fetch_dataset("nope", fake_upstream.url)
    assert not upstream.dataset_file("tiny").exists()


def test_pinned_tables_are_complete() -> None:
    """Every prompt slot and every upstream evaluation set is pinned by a full sha256."""
    assert set(upstream.PROMPTS) == set(CONSTANTS)
    assert set(upstream.DATASETS) == {
        "simpleqa", "frames", "webwalker", "seal0", "musique", "hle", "gpqa-diamond", "aime25", "medqa",
        "medxpertqa", "pubmedqa", "upsc_2025",
    }
    digests: list[Any] = [s.sha256 for s in upstream.PROMPTS.values()] + [s.sha256 for s in upstream.DATASETS.values()]
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)
    assert len(upstream.UPSTREAM_COMMIT) == 40

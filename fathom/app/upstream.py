"""The upstream prompts and evaluation sets, fetched on the user's machine, never committed here.

``fathom prompts fetch`` downloads the upstream source files at :data:`UPSTREAM_COMMIT` from
GitHub's raw host (``Settings.prompts_base_url``), takes the string constants out of them with
:mod:`ast` (the files are parsed, never imported or executed), checks each text against the
sha256 pinned in :data:`PROMPTS`, and stores them, bytes exactly as extracted, under
``<user data dir>/prompts/<commit>/<name>.txt``. ``fathom datasets fetch`` does the same for the
evaluation sets (``DATASETS``; the whole file is pinned). A text or file whose digest differs is
refused and nothing of that fetch is kept.

Only :mod:`fathom.app` and :mod:`fathom.cli` import this module: the research core is handed the
texts as :class:`~fathom.protocols.prompts.Prompt` objects by :mod:`fathom.app.services`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import string
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from fathom.errors import ConfigError

UPSTREAM_REPO = "FractalAIResearchLabs/Fathom-DeepResearch"
UPSTREAM_COMMIT = "cdc2010be8b9b7627f82e6492148d1dc9964e0b1"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}"
MAX_FILE_BYTES = 16 * 1024 * 1024  # the largest evaluation set is about 4 MB
TIMEOUT_S = 60.0
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class TextSpec:
    """Where one upstream text lives and the sha256 of its UTF-8 bytes as extracted.

    ``constant`` names an assignment: ``NAME``, ``Class.NAME`` (or ``Class.method.NAME``, a
    local variable), optionally followed by literal subscripts (``NAME['key'][1]``), or
    ``function()`` for the literal head of the f-string the function returns (cut before ``cut``).
    ``render`` says how the value becomes text: ``str`` (a string constant, also one with
    ``.strip()`` applied or an f-string without fields), ``repr`` (a literal shown as Python
    shows it in ``str.format``), ``head`` (of a returned or assigned f-string).
    """

    path: str
    constant: str
    sha256: str
    render: Literal["str", "repr", "head"] = "str"
    cut: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """One evaluation set: its upstream file, the sha256 of the whole file, its row count."""

    path: str
    sha256: str
    rows: int


# Our name -> the upstream text. The digests were computed from the upstream tree at the commit.
PROMPTS: dict[str, TextSpec] = {
    # the search system prompt, a str.format template with a {func_schemas} slot
    "search_system": TextSpec(
        "agents/inference/re_call.py", "ReCall.sys_prompt",
        "aa91d1d4ddee94f500ed0e42021a452d18d63bcd84a9a51a8e401aedc4ec4b4d"),
    # the tool schema lists, as the prompt shows them (Python repr): single-question CLI variant
    "search_schemas": TextSpec(
        "inference.py", "RECALL_SCHEMAS",
        "7e3947d92a278b80fa02fcf9aa73a5f7455b04ba9626ecdec095716108521b47", "repr"),
    "search_schemas_fathom": TextSpec(
        "eval_search.py", "RECALL_PRESETS['fathom'][1]",
        "c5529860076b5582b27d513cade70524a87982fb29883faef3d79baac94a66f4", "repr"),
    "search_schemas_legacy": TextSpec(
        "eval_search.py", "RECALL_PRESETS['legacy'][1]",
        "f2fcac97f123fc07b62405bf62db5e145a89f88658014cf05b5d83123dedc63f", "repr"),
    # the synthesizer's system prompt, and the lead-in sentence of its user turn
    "synth_system": TextSpec(
        "prompts.py", "DEEPRESEARCH_SYS_PROMPT",
        "3602eef523bfe7680b2335d98e5d447ce1612ab59cdab56bc704e88adaf89470"),
    "synth_lead_in": TextSpec(
        "inference.py", "build_summary_prompt()",
        "5555e7af1aea6e85837857e3b40879df8e753753298a5cb684ee86f38d4c5cbd", "head", "\n\nQuestion:\n"),
    # the query LLM's evidence extraction (a str.format template with {webpage_content}, {goal})
    "evidence_system": TextSpec(
        "serving/web_agents/compressor.py", "EXTRACTOR_SYS_PROMPT",
        "1aea888b2e66841f00562b84f78f85251052f703d6e33652d0af1c05d43c1a5a"),
    "evidence_user": TextSpec(
        "serving/web_agents/compressor.py", "EXTRACTOR_PROMPT_TEMPLATE",
        "6c737cace146f59cbc3e8d4d7664b5f99e0c944876e3967658a04b74653c43ed"),
    # the baseline agents (--search-protocol r1-searcher | zerosearch | search-o1): their main
    # prompts and the prompts of their summarising steps ({search_query}, {document} and
    # {prev_reasoning} templates)
    "r1_system": TextSpec(
        "agents/inference/r1_searcher.py", "R1Searcher.SYSTEM_PROMPT",
        "e5f5e1db42b00d257a8d8c544adf299bfea6a9ed1ec93037f9bdd2fa2b31f188"),
    "r1_summary": TextSpec(
        "agents/inference/r1_searcher.py", "R1Searcher.SUMMARY_PROMPT",
        "74bf638e7befebc83a8a5118d17c9a10a43bc5e008d71cab42fa769c6eb630c8"),
    "zerosearch_instructions": TextSpec(
        "agents/inference/zerosearch.py", "ZeroSearchInference._build_initial_prompt.user_msg",
        "63211abec1c7abe904d35c8439189ecde5349d959ad5214f73cde8ca6040f354", "head", " Question: "),
    "search_o1_system": TextSpec(
        "agents/inference/search_o1.py", "O1Searcher.sys_prompt_multiqa",
        "576cf41d0798e539159f941877490b7e5c20d8e7f51926af13009171ac555724"),
    "search_o1_documents": TextSpec(
        "agents/inference/search_o1.py", "O1Searcher.get_webpage_to_reasonchain_instruction",
        "d2f5eabd99958592acf9ac82bb07fe25fb38a452ffd25d2194c636b9d01b157d"),
}

DATASETS: dict[str, DatasetSpec] = {
    "simpleqa": DatasetSpec("eval_datasets/simpleqa.jsonl",
                            "9eca24917500eb76d7b41ccab0603cdb359a344aa722a2eb947262ab95fd6e9b", 4326),
    "frames": DatasetSpec("eval_datasets/frames.jsonl",
                          "ed60bf35f004bfd5589a8f6ed5826d260f5a46a6874bbab07c8ce3470eac805e", 824),
    "webwalker": DatasetSpec("eval_datasets/webwalker.jsonl",
                             "1b648900e14ad60f3198657d8d8f871a1042017b66800784f6fae4c0d7f14b16", 680),
    "seal0": DatasetSpec("eval_datasets/seal0.jsonl",
                         "f788656ae858e9b3a5087ff80ae4932a324a985ae447970286025eaf97b4ff00", 111),
    "musique": DatasetSpec("eval_datasets/musique.jsonl",
                           "322095bc6e87c8b9b2801c46870f6e6f940a86f623a08065c129ba214b63c0d0", 2417),
    "hle": DatasetSpec("eval_datasets/hle.jsonl",
                       "7653ff3c7e5fcf355c9550f8e32e94a60311985c266e8437b4ce335469bada66", 2158),
    "gpqa-diamond": DatasetSpec("eval_datasets/GPQA-Diamond.jsonl",
                                "e6fcb50f2be4fcc6be87559b1860957285e39e871062fec620fa201d4b2f1bb8", 198),
    "aime25": DatasetSpec("eval_datasets/aime25.jsonl",
                          "260175bb5ff3519a0573f471e660105c4b4afefdf72680777202b9e6f9cff3de", 30),
    "medqa": DatasetSpec("eval_datasets/medqa.jsonl",
                         "7c1781d25bb7c7acffee372378fda3a88f8760fea8b55a9728735b21dbaff315", 1273),
    "medxpertqa": DatasetSpec("eval_datasets/medxpertqa.jsonl",
                              "b07677febf276103646f5401ffc29a895c01cffe342da3868e408862e566d7fa", 2450),
    "pubmedqa": DatasetSpec("eval_datasets/pubmedqa.jsonl",
                            "dc875eeb5073739dbcad726832cc9c7020ded2a4b9ce8b0c92148031004e896e", 1000),
    "upsc_2025": DatasetSpec("eval_datasets/upsc_2025.jsonl",
                             "6b27fe7e49fc4d57447bc025b1488bcc8c1d02856b4079948e96bb302fb25f3d", 100),
}

# What each use of the trained texts needs installed.
SEARCH_PROMPT_TEXTS = ("search_system", "search_schemas")
EVIDENCE_PROMPT_TEXTS = ("evidence_system", "evidence_user")
SYNTH_PROMPT_TEXTS = ("synth_system",)
# A baseline protocol's trained texts: its main prompt first, then its summarising step's (if any).
BASELINE_PROMPT_TEXTS: dict[str, tuple[str, ...]] = {
    "legacy": ("search_system", "search_schemas_legacy"),
    "r1-searcher": ("r1_system", "r1_summary"),
    "zerosearch": ("zerosearch_instructions",),
    "search-o1": ("search_o1_system", "search_o1_documents"),
}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- where things are stored --------------------------------------------------------------------


def data_root() -> Path:
    import platformdirs

    return platformdirs.user_data_path("fathom", appauthor=False)


def prompts_dir(commit: str = UPSTREAM_COMMIT) -> Path:
    return data_root() / "prompts" / commit


def datasets_dir(commit: str = UPSTREAM_COMMIT) -> Path:
    return data_root() / "datasets" / commit


# ---- downloading --------------------------------------------------------------------------------


def raw_url(base_url: str, path: str, commit: str = UPSTREAM_COMMIT) -> str:
    return f"{base_url.rstrip('/')}/{commit}/{path}"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def download(url: str, *, max_bytes: int = MAX_FILE_BYTES, timeout_s: float = TIMEOUT_S) -> bytes:
    """GET ``url``; redirects are followed only within its scheme and host, the body is capped.

    Raises:
        ConfigError: one line naming the URL and what went wrong.
    """
    import httpx

    from fathom import __version__

    origin = _origin(url)
    headers = {"User-Agent": f"fathom/{__version__}", "Accept-Encoding": "identity"}
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0))
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, headers=headers, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        target = urljoin(url, response.headers.get("location", ""))
                        if _origin(target) != origin:
                            raise ConfigError(f"refused a redirect from {url} to another host: {target}")
                        url = target
                        continue
                    if response.status_code != 200:
                        raise ConfigError(f"cannot download {url}: HTTP {response.status_code}")
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise ConfigError(f"cannot download {url}: larger than {max_bytes} bytes")
                    return bytes(body)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot download {url}: {type(exc).__name__}: {exc}") from None
    raise ConfigError(f"cannot download {url}: more than {MAX_REDIRECTS} redirects")


# ---- extraction: ast only, the file is never run ------------------------------------------------


def extract_text(source: bytes, spec: TextSpec) -> str:
    """The text ``spec`` names in the Python ``source``, found and evaluated with :mod:`ast` alone.

    Raises:
        ConfigError: the file does not parse, the constant is missing or not a literal.
    """
    where = f"{spec.constant} in {spec.path}"
    try:
        tree = ast.parse(source, filename=spec.path)
    except (SyntaxError, ValueError) as exc:
        raise ConfigError(f"{spec.path} is not Python source: {exc}") from None
    if spec.render == "head":
        return _fstring_head(tree, spec, where)
    name, _, subscripts = spec.constant.partition("[")
    node = _assigned(tree.body, name.split("."), where)
    try:
        value = _literal(node)
        for key in _subscripts("[" + subscripts if subscripts else ""):
            value = value[key]
    except (ValueError, TypeError, KeyError, IndexError, SyntaxError, MemoryError, RecursionError):
        raise ConfigError(f"{where} is not a literal value") from None
    if spec.render == "repr":
        return repr(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} is not a string")
    return value


def _literal(node: ast.expr) -> Any:
    """``ast.literal_eval``, plus the two forms prompts take upstream: a string literal with
    ``.strip()`` applied, and an f-string without fields (adjacent literals joined to one)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "strip"
            and not node.args and not node.keywords and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)):
        return node.func.value.value.strip()
    if isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in node.values):
        return "".join(str(v.value) for v in node.values)  # type: ignore[attr-defined]
    return ast.literal_eval(node)


def _assigned(body: list[ast.stmt], names: list[str], where: str) -> ast.expr:
    """The value last assigned to ``names[-1]`` in the class (or module) ``names[:-1]`` names."""
    *scopes, last = names
    for scope in scopes:
        found = [n for n in body if isinstance(n, ast.ClassDef | ast.FunctionDef) and n.name == scope]
        if not found:
            raise ConfigError(f"{where}: {scope} not found")
        body = found[-1].body
    value: ast.expr | None = None
    for node in body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == last for t in node.targets):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == last:
            value = node.value
    if value is None:
        raise ConfigError(f"{where}: not found")
    return value


def _subscripts(text: str) -> list[Any]:
    if not text:
        return []
    expr = ast.parse("_" + text, mode="eval").body
    keys: list[Any] = []
    while isinstance(expr, ast.Subscript):
        keys.append(ast.literal_eval(expr.slice))
        expr = expr.value
    return keys[::-1]


def _fstring_head(tree: ast.Module, spec: TextSpec, where: str) -> str:
    """The literal text at the start of the f-string a function returns (``function()``) or a
    name is assigned (``Class.method.name``), before ``spec.cut``."""
    value: ast.expr | None
    if spec.constant.endswith("()"):
        name = spec.constant.removesuffix("()")
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
        returns = [n for n in ast.walk(functions[-1]) if isinstance(n, ast.Return)] if functions else []
        value = returns[-1].value if returns else None
    else:
        value = _assigned(tree.body, spec.constant.split("."), where)
    if not isinstance(value, ast.JoinedStr) or not value.values or not isinstance(value.values[0], ast.Constant):
        raise ConfigError(f"{where}: no f-string with a literal head is returned")
    head = value.values[0].value
    if not isinstance(head, str) or spec.cut not in head:
        raise ConfigError(f"{where}: the literal head does not end where expected")
    return head.split(spec.cut, 1)[0]


# ---- storing: verified first, then written at once ----------------------------------------------


def _checked(name: str, data: bytes, expected: str) -> None:
    actual = sha256_hex(data)
    if actual != expected:
        raise ConfigError(
            f"upstream {name} has changed: sha256 {actual}, expected {expected}; nothing was stored"
        )


def _write_dir(target: Path, files: Mapping[str, bytes]) -> None:
    """Replace ``target`` with a directory of ``files``, all or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for filename, data in files.items():
            (staging / filename).write_bytes(data)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _write_file(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Installed:
    """One installed text or data set: where it is, its digest, and whether it is as pinned."""

    name: str
    path: Path
    sha256: str | None  # None: not installed
    ok: bool
    rows: int | None = None

    @property
    def state(self) -> str:
        return "missing" if self.sha256 is None else "ok" if self.ok else "changed"


Downloader = Callable[[str], bytes]


def fetch_prompts(
    base_url: str = DEFAULT_BASE_URL,
    *,
    table: Mapping[str, TextSpec] | None = None,
    commit: str = UPSTREAM_COMMIT,
    get: Downloader = download,
) -> list[Installed]:
    """Download, extract and verify every prompt of ``table``; store them all or none.

    Raises:
        ConfigError: a download failed, a constant was not found, or a digest differs.
    """
    table = PROMPTS if table is None else table
    sources: dict[str, bytes] = {}
    texts: dict[str, bytes] = {}
    for name, spec in table.items():
        if spec.path not in sources:
            sources[spec.path] = get(raw_url(base_url, spec.path, commit))
        data = extract_text(sources[spec.path], spec).encode("utf-8")
        _checked(f"prompt {name} ({spec.constant} in {spec.path})", data, spec.sha256)
        texts[f"{name}.txt"] = data
    target = prompts_dir(commit)
    _write_dir(target, texts)
    return [Installed(name, target / f"{name}.txt", table[name].sha256, True) for name in table]


def installed_prompts(table: Mapping[str, TextSpec] | None = None, commit: str = UPSTREAM_COMMIT) -> list[Installed]:
    """Every prompt of ``table``: installed or not, and whether its bytes are still as pinned."""
    table = PROMPTS if table is None else table
    found = []
    for name, spec in table.items():
        path = prompts_dir(commit) / f"{name}.txt"
        try:
            digest: str | None = sha256_hex(path.read_bytes())
        except OSError:
            digest = None
        found.append(Installed(name, path, digest, digest == spec.sha256))
    return found


def read_prompt(name: str, table: Mapping[str, TextSpec] | None = None, commit: str = UPSTREAM_COMMIT) -> str | None:
    """An installed prompt's text (None when not installed).

    Raises:
        ConfigError: an unknown name, or a stored file whose bytes are no longer as pinned.
    """
    table = PROMPTS if table is None else table
    if name not in table:
        raise ConfigError(f"unknown prompt {name!r}: the prompts are {', '.join(table)}")
    path = prompts_dir(commit) / f"{name}.txt"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if (digest := sha256_hex(data)) != table[name].sha256:
        raise ConfigError(
            f"installed prompt {name} at {path} has changed: sha256 {digest}, expected "
            f"{table[name].sha256}; run 'fathom prompts fetch' again"
        )
    return data.decode("utf-8")


def trained_installed(names: Iterable[str], commit: str = UPSTREAM_COMMIT) -> bool:
    """Whether every prompt of ``names`` has been fetched (their bytes are checked when read)."""
    return all((prompts_dir(commit) / f"{name}.txt").is_file() for name in names)


def fill_format_template(text: str, values: Mapping[str, str], what: str) -> str:
    """``text.format(**values)`` as upstream fills it, refusing any other replacement field."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as exc:
        raise ConfigError(f"{what} is not a format template: {exc}") from None
    if unknown := fields - set(values):
        raise ConfigError(f"{what} has unexpected slots: {', '.join(sorted(unknown))}")
    return text.format(**values)


def as_replace_template(text: str, slots: Iterable[str], what: str) -> str:
    """A ``str.format`` template as a plain-replace one: ``{{``/``}}`` unescaped, ``{slot}`` kept."""
    return fill_format_template(text, {slot: "{" + slot + "}" for slot in slots}, what)


# ---- evaluation sets ----------------------------------------------------------------------------


def dataset_file(name: str, commit: str = UPSTREAM_COMMIT) -> Path:
    return datasets_dir(commit) / f"{name}.jsonl"


def count_rows(data: bytes, name: str) -> int:
    """The rows of a JSONL evaluation set, each checked to be an object with question and answer.

    Raises:
        ConfigError: naming the first bad line.
    """
    rows = 0
    text = data.decode("utf-8", errors="strict")
    # split on "\n" only: str.splitlines would also cut at U+2028 and friends inside strings
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"data set {name}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "question" not in row or "answer" not in row:
            raise ConfigError(f"data set {name}, line {number}: not an object with question and answer")
        rows += 1
    return rows


def fetch_dataset(
    name: str,
    base_url: str = DEFAULT_BASE_URL,
    *,
    table: Mapping[str, DatasetSpec] | None = None,
    commit: str = UPSTREAM_COMMIT,
    get: Downloader = download,
) -> Installed:
    """Download one evaluation set, check its digest and rows, and store it.

    Raises:
        ConfigError: an unknown name, a failed download, a changed file or a bad row.
    """
    table = DATASETS if table is None else table
    if name not in table:
        raise ConfigError(f"unknown data set {name!r}: the data sets are {', '.join(table)}")
    spec = table[name]
    data = get(raw_url(base_url, spec.path, commit))
    _checked(f"data set {name} ({spec.path})", data, spec.sha256)
    try:
        rows = count_rows(data, name)
    except UnicodeDecodeError:
        raise ConfigError(f"data set {name} is not UTF-8 text") from None
    if rows != spec.rows:
        raise ConfigError(f"data set {name} has {rows} rows, expected {spec.rows}; nothing was stored")
    target = dataset_file(name, commit)
    _write_file(target, data)
    return Installed(name, target, spec.sha256, True, rows)


def installed_datasets(table: Mapping[str, DatasetSpec] | None = None, commit: str = UPSTREAM_COMMIT) -> list[Installed]:
    """Every evaluation set of ``table``: installed or not, its digest and rows."""
    table = DATASETS if table is None else table
    found = []
    for name, spec in table.items():
        path = dataset_file(name, commit)
        try:
            data = path.read_bytes()
        except OSError:
            found.append(Installed(name, path, None, False))
            continue
        digest = sha256_hex(data)
        rows = count_rows(data, name) if digest == spec.sha256 else None
        found.append(Installed(name, path, digest, digest == spec.sha256, rows))
    return found


__all__ = [
    "DATASETS", "DEFAULT_BASE_URL", "PROMPTS", "UPSTREAM_COMMIT", "DatasetSpec", "Installed", "TextSpec",
    "as_replace_template", "download", "extract_text", "fetch_dataset", "fetch_prompts", "fill_format_template",
    "installed_datasets", "installed_prompts", "read_prompt", "trained_installed",
]

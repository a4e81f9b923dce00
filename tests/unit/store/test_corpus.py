"""The local corpus: incremental indexing, full-text search on every database, file:// reads limited
to indexed files (a security boundary), the CLI, and a research run over local files only."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fathom.app.services import toolbox
from fathom.settings import Settings
from fathom.store.corpus import Corpus, CorpusError, file_url
from fathom.store.fulltext import LocalSearchBackend
from fathom.tools.toolbox import INVALID_URL
from tests.conftest import call, fake_env
from tests.fakes.pdf import make_pdf
from tests.support.checkpoints import backend_url

__all__ = ["backend_url"]  # fixture: SQLite, PostgreSQL and MariaDB (skipped when unreachable)

LAKE_HTML = """<html><head><title>Lake Vostrand</title></head><body><nav>Home | Lakes</nav>
<h1>Lake Vostrand</h1><p>Lake Vostrand is a glacial lake in Norrland. Its maximum depth is 221 metres.</p>
</body></html>"""


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "bridges").mkdir(parents=True)
    (root / ".git").mkdir()
    (tmp_path / "private").mkdir()
    (root / "bridges" / "kestrel.md").write_text(
        "# Kestrel Bridge\n\nThe Kestrel Bridge is a wrought-iron truss bridge. It opened on 14 June 1897.\n")
    (root / "lake.html").write_text(LAKE_HTML)
    (root / "tram.txt").write_text("City council notes\n\nThe tram extension to the airport is 6.2 kilometres long.\n")
    (root / "survey.pdf").write_bytes(make_pdf([["Heron Viaduct survey", "The viaduct has nineteen arches."]],
                                               title="Heron Viaduct Survey"))
    (root / "menu.txt").write_bytes("Caf\u00e9 menu: cr\u00e8me br\u00fbl\u00e9e with saffron\n".encode("cp1252"))
    (root / "blob.txt").write_bytes(b"\x00\x01binary\x00" * 10)
    (root / "notes.py").write_text("SECRET_TOKEN = 'not indexed: not a document type'\n")
    (root / ".git" / "HEAD.md").write_text("hidden saffron\n")
    (tmp_path / "private" / "passwords.txt").write_text("saffron password hunter2\n")
    (root / "link.txt").symlink_to(tmp_path / "private" / "passwords.txt")
    return root


@pytest.fixture
async def corpus(backend_url: str) -> AsyncIterator[Corpus]:
    opened = Corpus.open(backend_url)
    try:
        yield opened
    finally:
        await opened.aclose()


async def search(corpus: Corpus, query: str, fulltext: str | None = None) -> list[str]:
    hits = await LocalSearchBackend(corpus, fulltext=fulltext).search(query, 10)  # type: ignore[arg-type]
    return [Path(h["url"].removeprefix("file://")).name for h in hits]


async def test_index_search_and_read(corpus: Corpus, docs: Path) -> None:
    report = await corpus.index(docs)
    assert (report.added, report.updated, report.unchanged, report.removed) == (6, 0, 0, 0)  # blob.txt too
    assert report.failed == [(str(docs / "blob.txt"), "it is a binary file, not text")]
    assert (str(docs / "menu.txt"), "not valid UTF-8: read as Windows-1252") in report.warnings
    assert (str(docs / "link.txt"), "skipped: a link to a file outside the indexed directory") in report.warnings

    assert await search(corpus, "when did the Kestrel bridge open?") == ["kestrel.md"]
    assert await search(corpus, "maximum depth of lake vostrand") == ["lake.html"]
    assert await search(corpus, "viaduct arches") == ["survey.pdf"]
    assert await search(corpus, "saffron") == ["menu.txt"]  # not the hidden or the linked file
    assert await search(corpus, "binary") == []
    assert await search(corpus, "the of and") == []  # stopwords only: nothing to look for

    hits = await LocalSearchBackend(corpus).search("tram extension airport", 10)
    assert (hits[0]["title"], hits[0]["url"]) == ("City council notes", file_url(docs / "tram.txt"))
    assert hits[0]["snippet"].endswith("The tram extension to the airport is 6.2 kilometres long.")
    doc = await corpus.read(file_url(docs / "lake.html"))
    assert doc.title == "Lake Vostrand" and "221 metres" in doc.text and "Home | Lakes" not in doc.text
    assert "cr\u00e8me br\u00fbl\u00e9e" in (await corpus.read(file_url(docs / "menu.txt"))).text
    assert (await corpus.read(file_url(docs / "survey.pdf"))).title == "Heron Viaduct Survey"

    stats = await corpus.stats()
    assert [(s.path, s.files, s.unreadable) for s in stats] == [(str(docs), 6, 1)]


async def test_like_fallback_finds_the_same_files(corpus: Corpus, docs: Path) -> None:
    await corpus.index(docs)
    assert await search(corpus, "Kestrel opened", "like") == ["kestrel.md"]
    assert await search(corpus, "100% arches_", "like") == ["survey.pdf"]  # only words reach LIKE
    assert await search(corpus, "glacial depth", "like") == ["lake.html"]


async def test_reindexing_reads_only_what_changed(corpus: Corpus, docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await corpus.index(docs)
    again = await corpus.index(docs)
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 6, 0)

    kestrel = docs / "bridges" / "kestrel.md"
    kestrel.write_text("# Kestrel Bridge\n\nThe Kestrel Bridge was repainted green in 2006.\n")
    os.utime(docs / "tram.txt", (1, 1))  # touched, same content: no new extraction
    (docs / "lake.html").unlink()
    (docs / "new.md").write_text("A new note about kingfishers.\n")
    unreadable = docs / "bridges" / "locked.md"
    unreadable.write_text("locked")
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if self == unreadable else real_read(self))

    report = await corpus.index(docs)
    assert (report.added, report.updated, report.unchanged, report.removed) == (1, 1, 4, 1)  # tram.txt, survey.pdf, menu.txt, blob.txt
    assert report.failed == [(str(unreadable), "Permission denied")]
    assert await search(corpus, "repainted green") == ["kestrel.md"]
    assert await search(corpus, "opened 1897 truss") == []
    assert await search(corpus, "glacial lake") == []
    assert await search(corpus, "kingfishers") == ["new.md"]
    with pytest.raises(CorpusError, match="not a file of the indexed local corpus"):
        await corpus.read(file_url(docs / "lake.html"))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "file://{private}/passwords.txt",  # outside the indexed directory
        "file://{docs}/link.txt",  # a link inside it to a file outside
        "file://{docs}/../private/passwords.txt",  # traversal
        "file://{docs}/bridges/%2E%2E/%2E%2E/private/passwords.txt",  # encoded traversal
        "file://{docs}/notes.py",  # inside, but not a document type: never indexed
        "file://{docs}/.git/HEAD.md",  # inside, hidden
        "file://{docs}/bridges",  # a directory
        "file://evil.example{docs}/tram.txt",  # another host
        "file:relative/tram.txt",
    ],
)
async def test_only_indexed_files_can_be_read(corpus: Corpus, docs: Path, url: str) -> None:
    await corpus.index(docs)
    with pytest.raises(CorpusError):
        await corpus.read(url.format(docs=docs, private=docs.parent / "private"))


async def test_removed_directories_are_forgotten(corpus: Corpus, docs: Path) -> None:
    await corpus.index(docs)
    assert await corpus.remove(docs) == 6
    assert await search(corpus, "kestrel") == [] and await corpus.stats() == []
    with pytest.raises(CorpusError, match="not a file of the indexed local corpus"):
        await corpus.read(file_url(docs / "tram.txt"))
    with pytest.raises(CorpusError, match="not an indexed directory"):
        await corpus.remove(docs)
    with pytest.raises(CorpusError, match="not a directory"):
        await corpus.index(docs / "tram.txt")


# ---- in the toolbox ----------------------------------------------------------------------------


async def test_toolbox_searches_and_reads_the_corpus(docs: Path, db_url: str) -> None:
    async with Corpus.open(db_url) as corpus:
        await corpus.index(docs)
    async with toolbox(Settings(search_backend="local", db_url=db_url)) as tools:
        found = await tools.search_urls("Kestrel Bridge opening date")
        assert found.ok and found.sources[0]["url"] == file_url(docs / "bridges" / "kestrel.md")
        read = await tools.query_url(found.sources[0]["url"], "When did the Kestrel Bridge open?")
        assert read.ok and "14 June 1897" in read.text
        refused = await tools.query_url(f"file://{docs.parent}/private/passwords.txt", "passwords")
        assert refused.text.endswith("it is not a file of the indexed local corpus") and not refused.ok
        assert "hunter2" not in refused.text


async def test_web_backends_never_read_local_files(docs: Path, db_url: str) -> None:
    async with Corpus.open(db_url) as corpus:
        await corpus.index(docs)
    settings = Settings(search_backend="searxng", searxng_url="http://127.0.0.1:9", db_url=db_url)
    async with toolbox(settings) as tools:
        assert (await tools.query_url(file_url(docs / "tram.txt"), "tram")).text == INVALID_URL


# ---- command line ------------------------------------------------------------------------------


def test_cli_index_stats_remove(cli, docs: Path) -> None:
    indexed = cli("corpus", "index", str(docs))
    assert indexed.returncode == 0, indexed.stderr
    assert f"indexed {docs}: 6 added, 0 updated, 0 unchanged, 0 removed, 1 unreadable" in indexed.stderr
    assert f"unreadable: {docs / 'blob.txt'}: it is a binary file" in indexed.stderr
    assert "not valid UTF-8" in indexed.stderr
    assert "0 added, 0 updated, 6 unchanged" in cli("corpus", "index", "-q", str(docs)).stderr

    stats = cli("corpus", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    (row,) = [json.loads(line) for line in stats.stdout.splitlines()]
    assert (row["path"], row["files"], row["unreadable"]) == (str(docs), 6, 1)

    removed = cli("corpus", "remove", str(docs))
    assert removed.returncode == 0 and "(6 files)" in removed.stderr
    assert cli("corpus", "stats", "--json").stdout == ""
    missing = cli("corpus", "remove", str(docs))
    assert missing.returncode == 2 and missing.stderr.startswith("fathom: error:") and "not an indexed" in missing.stderr
    bad = cli("corpus", "index", str(docs / "nope"))
    assert bad.returncode == 2 and "cannot index" in bad.stderr


def test_research_over_the_local_corpus(cli, sglang, searxng, web, docs: Path) -> None:
    assert cli("corpus", "index", "-q", str(docs)).returncode == 0
    url = file_url(docs / "bridges" / "kestrel.md")
    sglang.add(
        "Search my notes.</think>\n\n" + call("search_urls", query="Kestrel Bridge opening"),
        "Read the note.</think>\n\n" + call("query_url", url=url, goal="When did the Kestrel Bridge open?"),
        "It says 14 June 1897.</think>\n\nThe Kestrel Bridge opened in \\boxed{1897}.",
    )
    env = {**fake_env(sglang, searxng, web), "FATHOM_SEARCH_BACKEND": "local"}
    result = cli("research", "-q", "--json", "When did the Kestrel Bridge open?", env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["answer"] == "1897" and all(c["ok"] for c in out["tool_calls"])
    assert url in {s["url"] for s in out["sources"]}
    assert "14 June 1897" in sglang.prompts[-1]
    assert searxng.requests == [] and not web.hits  # nothing left the machine

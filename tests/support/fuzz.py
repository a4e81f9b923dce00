"""Hypothesis strategies of hostile input, shared by the fuzz tests (few cases each, in CI) and
``bench/fuzz.py`` (the long version: 10,000 cases a target, with megabyte-long input).

Each strategy builds its input from pieces that matter to the code under test (tags, braces,
brackets, JSON fragments, URLs) mixed with arbitrary Unicode, and repeats some pieces many times:
``big=True`` repeats up to a megabyte, which hypothesis' own string sizes never reach (bounds below).
"""

from __future__ import annotations

import functools
import json
import zlib
from typing import Any

from hypothesis import strategies as st

# Any Unicode scalar but lone surrogates (a model's text arrives as decoded UTF-8), and a few
# characters that matter everywhere: newlines, brackets, quotes, zero-width and right-to-left marks.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
ODD_CHARS = st.sampled_from(["\n", "\r\n", "\t", " ", "\u200b", "\u202e", "\ufeff", "\x00", "é", "日本", "🦉", "\\"])


# The long run's bounds (``big``). Pieces of 5,000 characters repeated 80,000 times made inputs
# of 400-800 MB, far past a real turn (8,192 tokens) or a page under the fetch cap (5 MB), and
# 10,000 cases never finished on two cores. Now a repeated piece stops at a megabyte and an input
# at four, one repeat in ten runs to tens of thousands; reports stop at half a megabyte a piece
# and one in total, one repeat in 46 running long (a 30,000-token report is ~120 kB, and checking
# and rendering one costs ~7 µs a character: five CommonMark parses).
BIG_PIECE, BIG_INPUT = 1_000_000, 4_000_000
_BIG_TIMES = [1, 1, 1, 2, 50, 2_000] * 3 + [20_000, 80_000]
BIG_REPORT_PIECE, BIG_REPORT = 500_000, 1_000_000
_BIG_REPORT_TIMES = [1, 1, 1, 2, 50, 2_000] * 15 + [20_000, 80_000]


def _repeated(piece: st.SearchStrategy[str], big: bool, big_times: list[int] = _BIG_TIMES,
              big_piece: int = BIG_PIECE) -> st.SearchStrategy[str]:
    """``piece`` once, or many times over (a model stuck in a loop; up to a megabyte with ``big``)."""
    if not big:
        return st.tuples(piece, st.sampled_from([1, 1, 1, 2, 20, 300])).map(lambda pair: pair[0] * pair[1])
    return st.tuples(piece, st.sampled_from(big_times)).map(
        lambda pair: pair[0] * min(pair[1], max(1, big_piece // max(1, len(pair[0])))))


def _joined(pieces: list[str], big: bool, cap: int = BIG_INPUT) -> str:
    return "".join(pieces)[:cap] if big else "".join(pieces)


# ---- search-model completions -----------------------------------------------------------------

_TOOL_NAMES = st.sampled_from(["search_urls", "query_url", "run_python", "", "Search_URLs", "search_urls "])
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT
    | st.sampled_from(["²", "٣", "10", " 7 ", "9" * 5000, "\ud800", "\udfff", "https://a.org/x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
_ARGUMENTS = st.dictionaries(st.sampled_from(["query", "top_k", "url", "goal", "code", ""]) | TEXT, _JSON_VALUES, max_size=4)


def _call_json(name: str, arguments: Any, double_encoded: bool) -> str:
    args = json.dumps(arguments) if double_encoded else arguments
    text = json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: a model writes it as an escape, "\\ud800"
        text = json.dumps({"name": name, "arguments": args})
    return text


CALL_BODIES = st.one_of(
    st.builds(_call_json, _TOOL_NAMES, _ARGUMENTS, st.booleans()),
    st.sampled_from([
        '{"name": "search_urls", "arguments": {"query": "kestrel bridge"}}',
        '{"name": "query_url", "arguments": {"url": "https://a.org/x", "goal": "the date"}}',
        '{"name": "search_urls", "arguments": {"query": "x", "top_k": "²"}}',
        '{"name": "search_urls", "arguments": {"query": "x\\ud800"}}',
        '{"name": "search_urls", "arguments": {"query": "x", "top_k": ' + "9" * 5000 + "}}",
        '{"name": "search_urls", "arguments": "{\\"query\\": "}',
        "[" * 5000,
        '{"name": "search_urls", "arguments": ' + "[" * 3000 + "}",
        "{not json}",
        "null",
        '"search_urls"',
        "",
    ]),
    TEXT,
)
_CALL = st.builds(lambda gap, body: f"<tool_call>{gap}{body}{gap}</tool_call>", st.sampled_from(["", "\n", " "]), CALL_BODIES)
_PIECES = st.sampled_from([
    "<think>", "</think>", "<tool_call>", "</tool_call>", "\\boxed{", "\\fbox{", "{", "}", "\\boxed{}",
    "\\boxed{Michio Sugeno}", "<|im_end|>", "<|im_start|>user\n", "<tool_response>", "</tool_response>",
])


def completions(big: bool = False) -> st.SearchStrategy[str]:
    """Text a search model might write: thinking, calls (inside or after ``<think>``), answers."""
    piece = st.one_of(_PIECES, _CALL, TEXT, ODD_CHARS)
    return st.lists(st.one_of(piece, _repeated(piece, big)), max_size=12).map(lambda pieces: _joined(pieces, big))


# ---- reports with citations -----------------------------------------------------------------------

RETRIEVED = ["https://a.com/x", "https://www.b.org/page/", "http://c.net/doc?id=7", "https://d.org/wiki/Foo_(bar)"]
_ODD_URLS = st.sampled_from([
    *RETRIEVED, "https://a.com/x/", "https://A.com/x", "https://a.com/x.", "https://a.com/x#frag", "http://a.com/x",
    "https://evil.com/a", "https://evil.com/a(b)", "https://evil.com/<script>", "https://evil.com/a b",
    "https://evil.com/]", "https://evil.com/[x]", "https://evil.com/\u202e", "https://évil.com/ü", "javascript:alert(1)",
    "data:text/html,x", "//evil.com/a", "mailto:x@evil.com", "https://", "http://[::1]/", "https://evil.com/" + "a" * 3000,
    "HTTPS://EVIL.COM/A", "https://evil.com/a)", "https://evil.com/\n", "ftp://evil.com/",
])


def _cite(kind: int, url: str, other: str, label: str) -> str:
    return [
        f"[{url}]", f"[{url}, {other}]", f"[{url}; {other}]", f"[{url}] [{other}]", f"[{label}]({url})",
        f"[{label}](<{url}>)", f'[{label}]({url} "t")', f"<{url}>", f"![{label}]({url})", f"[see [{url}]]({other})",
        f"[{label}][r]\n\n[r]: {url}", f"[{label}]( {url} )", f"[{label}\n{label}]({url})", f"`[{url}]`",
        f"```\n[{url}]\n```", f"[[{url}]]", f"[ {url} ]", f"({url})", f"[{url}", f"{url}]", f"\\[{url}]",
    ][kind % 21]


_CITATIONS = st.builds(_cite, st.integers(0, 20), _ODD_URLS, _ODD_URLS, TEXT)
_MD_PIECES = st.sampled_from([
    "# Executive Summary\n", "## Sources used\n", "**Sources:**\n", "## References\n", "\n\n", "\n", "- ", "1. ", "> ",
    "| a | b |\n|---|---|\n| [x] | y |\n", "```\n", "~~~\n", "`", "[", "]", "(", ")", "<", ">", "!", "Fact. ", "Claim ",
    "<script>alert(1)</script>", "<a href='https://evil.com/'>x</a>", "&amp;", "[unsourced]",
])


def reports(big: bool = False) -> st.SearchStrategy[str]:
    """Markdown a synthesizer might write: prose, citations of every shape, odd URLs and brackets."""
    piece = st.one_of(_CITATIONS, _MD_PIECES, TEXT, ODD_CHARS)
    return st.lists(st.one_of(piece, _repeated(piece, big, _BIG_REPORT_TIMES, BIG_REPORT_PIECE)), max_size=16).map(
        lambda pieces: _joined(pieces, big, BIG_REPORT))


# ---- documents to extract -----------------------------------------------------------------------------

_TAGS = st.sampled_from(["div", "p", "span", "table", "tr", "td", "ul", "li", "ol", "dl", "dt", "dd", "a", "b", "h1",
                         "h3", "pre", "article", "main", "nav", "header", "script", "style", "br", "svg", "template"])


def _nest(tag: str, depth: int, inner: str, closed: bool) -> str:
    return f"<{tag}>" * depth + inner + (f"</{tag}>" * depth if closed else "")


def _attr(name: str, size: int) -> str:
    return f'<div {name}="{"x" * size}">attribute</div>'


def html_documents(big: bool = False) -> st.SearchStrategy[str]:
    """Malformed and adversarial HTML: deep nesting, huge attributes, unclosed tags, odd entities."""
    depth = st.sampled_from([1, 3, 100, 2_100] + ([50_000] if big else []))  # 2,048: the words-only path
    attr_size = st.sampled_from([1, 1_000, 30_000] + ([2_000_000] if big else []))
    small = st.one_of(
        st.sampled_from(["<", ">", "</", "<!--", "-->", "<![CDATA[", "]]>", "&#0;", "&#xD800;", "&#99999999;", "&nbsp;",
                         "<title>", "</title>", "<meta charset='utf-16'>", "<br>", "<table><td>", "<li>", "<dt>",
                         "<?xml version='1.0'?>", "<!DOCTYPE html>", "\x00", "<p hidden>", "<a href='javascript:x'>"]),
        st.builds(_nest, _TAGS, st.sampled_from([1, 2, 5]), TEXT, st.booleans()),
        TEXT,
    )
    large = st.one_of(
        st.builds(_nest, _TAGS, depth, TEXT, st.booleans()),
        st.builds(_attr, st.sampled_from(["class", "role", "hidden", "style", "aria-hidden", "data-x"]), attr_size),
    )
    return st.lists(st.one_of(small, _repeated(small, big), large), max_size=12).map(lambda pieces: _joined(pieces, big))


def _pdf(objects: list[bytes], trailer_extra: str = "", broken_xref: bool = False) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % (offset + (7 if broken_xref else 0))
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R {trailer_extra}>>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _stream(data: bytes, compress: bool) -> bytes:
    body = zlib.compress(data, 9) if compress else data
    flate = b"/Filter /FlateDecode " if compress else b""
    return b"<< " + flate + b"/Length %d >>\nstream\n" % len(body) + body + b"\nendstream"


def _page_pdf(content: bytes, pages: int, compress: bool, broken_xref: bool) -> bytes:
    """A PDF of ``pages`` pages sharing one content stream (so a bomb is paid per page)."""
    kids = " ".join(["3 0 R"] * pages)
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        _stream(content, compress),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ], broken_xref=broken_xref)


def _bomb(size: int) -> bytes:
    """A content stream that inflates to ``size`` bytes of text operators (a zip-bomb-like PDF)."""
    return b"BT /F1 11 Tf 72 720 Td " + b"(aaaaaaaa) Tj " * (size // 15) + b"ET"


def pdf_documents(big: bool = False) -> st.SearchStrategy[bytes]:
    """Malformed and adversarial PDFs: inflating streams, many pages, cycles, broken tables, garbage."""
    bomb = st.sampled_from([1_000, 1_000_000, 20_000_000] if big else [1_000, 100_000]).map(_bomb)
    text = st.builds(lambda t: b"BT /F1 11 Tf 72 720 Td (" + t.encode("latin-1", "replace") + b") Tj ET", TEXT)
    operators = st.binary(max_size=200).map(lambda raw: b"BT " + raw + b" ET")
    content = st.one_of(bomb, text, operators)
    pages = st.sampled_from([1, 2, 60] + ([5_000] if big else []))
    valid = st.builds(_page_pdf, content, pages, st.booleans(), st.booleans())
    cyclic = st.just(_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"]))
    garbage = st.builds(lambda head, raw: head + raw, st.sampled_from([b"%PDF-1.4\n", b"%PDF-", b""]), st.binary(max_size=300))
    cut = st.builds(lambda doc, at: doc[: max(1, len(doc) * at // 100)], valid, st.integers(1, 99))
    return st.one_of(valid, cyclic, garbage, cut)


_OFFICE_PARTS = st.sampled_from([
    "word/document.xml", "xl/workbook.xml", "ppt/presentation.xml", "META-INF/container.xml", "[Content_Types].xml",
    "_rels/.rels", "word/_rels/document.xml.rels", "xl/worksheets/sheet1.xml", "OEBPS/content.opf", "mimetype",
])
_XML = st.one_of(
    st.sampled_from([
        b"", b"<?xml version='1.0'?><root/>", b"<w:document xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/2006/main'>"
        b"<w:body><w:p><w:r><w:t>text</w:t></w:r></w:p></w:body></w:document>",
        b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
        b"<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]><x>&c;&c;&c;&c;</x>",  # entity expansion
        b"<" * 10_000, b"<a>" * 5_000,
    ]),
    st.binary(max_size=200),
)


def _zip(members: list[tuple[str, bytes]], inflate_to: int) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
        if inflate_to:
            archive.writestr("word/media/bomb.bin", b"\0" * inflate_to)
    return buffer.getvalue()


@functools.cache
def _zip_bomb() -> bytes:
    """A .docx-looking archive with a member that inflates to 250 MB (built once: it takes a second)."""
    return _zip([("word/document.xml", b"<x/>")], 250_000_000)


def office_documents(big: bool = False) -> st.SearchStrategy[bytes]:
    """Zip archives that claim to be office files: random parts, hostile XML, an inflating member."""
    parts = st.dictionaries(_OFFICE_PARTS, _XML, max_size=5).map(lambda d: list(d.items()))
    doc = st.builds(_zip, parts, st.sampled_from([0, 0, 1_000_000]))
    cut = st.builds(lambda data, at: data[: max(1, len(data) * at // 100)], doc, st.integers(1, 99))
    bombs = [st.builds(_zip_bomb)] if big else []
    return st.one_of(doc, cut, st.binary(max_size=300), *bombs)

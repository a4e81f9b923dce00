"""Mechanical citation check: keep retrieved URLs, repair near misses, drop the rest."""

from __future__ import annotations

import json
import re

import pytest
from langchain_core.messages import ToolMessage

from fathom.nodes.citations import check_citations, retrieved_sources, sources_section, strip_sources_section

A = "https://a.com/x"
B = "https://www.b.org/page/"
C = "http://c.net/doc?id=7"
RETRIEVED = [A, B, C, "https://unused.io/"]


def body(text: str) -> str:
    """The report without the rebuilt source list."""
    return text.split("\n\n## Sources used")[0]


def test_valid_citations_kept_and_sources_rebuilt():
    result = check_citations(f"Fact one. [{A}]\n\nFact two. [{C}] Fact three. [{A}]", RETRIEVED)
    assert body(result.text) == f"Fact one. [{A}]\n\nFact two. [{C}] Fact three. [{A}]"
    assert result.kept == [A, C]
    assert result.removed == [] and result.normalized == {}
    assert result.unused == [B, "https://unused.io/"]
    assert result.text.endswith(f"## Sources used\n\n1. {A}\n2. {C}\n")


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ("Fact one [https://evil.com/a]. Next.", "Fact one [unsourced]. Next."),
        ("Fact one. [https://evil.com/a] Next.", "Fact one. [unsourced] Next."),
        ("A [https://evil.com/a] B", "A [unsourced] B"),
        ("A [https://evil.com/a], B", "A [unsourced], B"),
        ("Claim (see [https://evil.com/a]).", "Claim (see [unsourced])."),
        ("Claim ([https://evil.com/a]).", "Claim [unsourced]."),
        ("Line one.\n[https://evil.com/a]\nLine two.", "Line one.\n[unsourced]\nLine two."),
        ("[https://evil.com/a] Starts here.", "[unsourced] Starts here."),
        ("Two bad [https://evil.com/a] [https://evil.com/b].", "Two bad [unsourced]."),
        ("Two bad [https://evil.com/a], [https://evil.com/b].", "Two bad [unsourced]."),
        ("Fact. [https://evil.com/a].", "Fact. [unsourced]."),
        ("Auto <https://evil.com/a>.", "Auto [unsourced]."),
    ],
)
def test_a_claim_whose_only_citations_were_removed_is_marked_unsourced(report, expected):
    result = check_citations(report, RETRIEVED)
    assert body(result.text) == expected
    assert result.removed and all(u.startswith("https://evil.com/") for u in result.removed)
    assert result.unsourced == 1 and result.as_dict()["unsourced"] == 1
    assert "[]" not in result.text and "https://evil.com" not in result.text
    assert not re.search(r"[ \t][.,;:!?)]", body(result.text))


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (f"Fact one [{A}] [https://evil.com/a]. Next.", f"Fact one [{A}]. Next."),
        (f"Fact one [https://evil.com/a] [{A}]. Next.", f"Fact one [{A}]. Next."),
        (f"Fact one [https://evil.com/a], [{A}]. Next.", f"Fact one [{A}]. Next."),
        (f"Fact one. [{A}] [https://evil.com/a] Next.", f"Fact one. [{A}] Next."),
        (f"Fact one [{A}; https://evil.com/a].", f"Fact one [{A}]."),
    ],
)
def test_a_removed_citation_beside_a_kept_one_just_goes(report, expected):
    result = check_citations(report, RETRIEVED)
    assert body(result.text) == expected
    assert result.removed == ["https://evil.com/a"] and result.unsourced == 0


def test_each_unsourced_claim_is_marked_and_counted():
    report = (f"The bridge opened in 1897 [{A}]. It cost 21,400 pounds [https://evil.com/cost]. "
              f"Its span is 62 metres [https://evil.com/span].\n\nIt was restored in 2006. [{B}]")
    result = check_citations(report, RETRIEVED)
    assert body(result.text) == (f"The bridge opened in 1897 [{A}]. It cost 21,400 pounds [unsourced]. "
                                 f"Its span is 62 metres [unsourced].\n\nIt was restored in 2006. [{B}]")
    assert result.unsourced == 2 and result.as_dict()["unsourced"] == 2
    assert result.kept == [A, B]
    again = check_citations(result.text, RETRIEVED)  # the mark is text, not a citation
    assert again.text == result.text and again.unsourced == 0 and again.removed == []


def test_claims_without_any_citation_are_not_marked():
    result = check_citations(f"Intro sentence.\n\nFact [{A}]. Closing remark.", RETRIEVED)
    assert "[unsourced]" not in result.text and result.unsourced == 0


def test_unknown_links_inside_link_text_or_code_are_not_marked():
    result = check_citations(f"[see [https://evil.com/a] here]({A}) and `[https://evil.com/b]`", RETRIEVED)
    assert body(result.text) == f"[see here]({A}) and `[https://evil.com/b]`"
    assert result.unsourced == 0


def test_removed_urls_are_counted_once_each():
    result = check_citations("x [https://evil.com/a]. y [https://evil.com/a]. z [https://evil.com/b].", RETRIEVED)
    assert result.removed == ["https://evil.com/a", "https://evil.com/b"]
    assert result.kept == []
    assert result.unsourced == 3  # three claims, each marked
    assert result.text.endswith("## Sources used\n\nNo sources were cited.\n")


@pytest.mark.parametrize(
    ("cited", "target"),
    [
        ("https://a.com/x#section-2", A),  # fragment
        ("https://a.com/x/", A),  # trailing slash
        ("http://a.com/x", A),  # http <-> https
        ("https://www.a.com/x", A),  # www.
        ("https://a.com:443/x", A),  # default port
        ("HTTPS://A.COM/x", A),  # case of scheme and host
        ("https://a.com/x?utm_source=news&utm_medium=email", A),  # tracking parameters
        ("https://b.org/page", B),  # www. and trailing slash the other way
        ("https://c.net/doc?id=7&utm_campaign=z", C),
        ("https://a.com/x.", A),  # a full stop stuck to the URL
    ],
)
def test_near_misses_normalized_to_the_retrieved_url(cited, target):
    result = check_citations(f"Fact. [{cited}]", RETRIEVED)
    assert body(result.text) == f"Fact. [{target}]"
    assert result.normalized == {cited: target}
    assert result.kept == [target] and result.removed == []


def test_different_page_is_not_a_near_miss():
    result = check_citations("Fact. [https://a.com/y] [https://c.net/doc?id=8] [https://a.com/X]", RETRIEVED)
    assert result.kept == []
    assert len(result.removed) == 3


def test_grouped_citations():
    report = f"One. [{A}, https://evil.com/z, {C}] Two. [{B}; {A}] Three. [https://evil.com/1,https://evil.com/2]."
    result = check_citations(report, RETRIEVED)
    assert body(result.text) == f"One. [{A}] [{C}] Two. [{B}] [{A}] Three. [unsourced]."
    assert result.kept == [A, C, B]
    assert result.removed == ["https://evil.com/z", "https://evil.com/1", "https://evil.com/2"]


def test_group_duplicates_collapse():
    assert body(check_citations(f"X. [{A}, http://a.com/x/]", RETRIEVED).text) == f"X. [{A}]"


def test_prose_in_brackets_is_left_alone():
    report = "See [https://evil.com/a is a mirror] for context."
    assert body(check_citations(report, RETRIEVED).text) == report


def test_markdown_links():
    report = (
        f"Known [the A page]({A}), near [B](https://b.org/page#top), unknown [a blog](https://evil.com/p), "
        "script [click](javascript:alert(1)), relative [doc](/local), bare [https://evil.com/q](https://evil.com/q), "
        f"empty [](http://c.net/doc?id=7) end."
    )
    result = check_citations(report, RETRIEVED)
    assert body(result.text) == (
        f"Known [the A page]({A}), near [B]({B}), unknown a blog [unsourced], script click, relative doc, "
        f"bare [unsourced], empty [{C}] end."
    )
    assert result.unsourced == 2  # web links only: a script or relative link is merely unlinked
    assert result.kept == [A, B, C]
    assert "javascript:alert(1)" in result.removed and "/local" in result.removed
    assert result.normalized == {"https://b.org/page#top": B}


def test_wikipedia_style_parentheses_in_links():
    wiki = "https://en.wikipedia.org/wiki/Mercury_(planet)"
    result = check_citations(f"See [Mercury]({wiki}) and [{wiki}].", [wiki])
    assert body(result.text) == f"See [Mercury]({wiki}) and [{wiki}]."
    assert result.kept == [wiki]


def test_images_become_alt_text_and_autolinks_are_checked():
    result = check_citations(f"![chart](https://evil.com/i.png) <{A}> <https://evil.com/x>.", RETRIEVED)
    assert body(result.text) == f"chart <{A}>."
    assert result.kept == [A]


def test_code_is_left_alone():
    report = f"Text [https://evil.com/a].\n\n```\ncurl [https://evil.com/b]\n```\n\nInline `[https://evil.com/c]` [{A}]"
    result = check_citations(report, RETRIEVED)
    assert "curl [https://evil.com/b]" in result.text and "`[https://evil.com/c]`" in result.text
    assert result.removed == ["https://evil.com/a"]


@pytest.mark.parametrize(
    "tail",
    [
        "## Sources used\nhttps://evil.com/listed\nhttps://a.com/x",
        "## 7. Sources used:\n- https://evil.com/listed",
        "# References\n1. [Evil](https://evil.com/listed)\n### Extra\nhttps://evil.com/more",
        "**Sources:**\n- https://evil.com/listed\n\n- https://a.com/x",
        "Sources used:\nhttps://evil.com/listed",
        "## Sources\n- https://evil.com/listed\n\n## References\n- https://evil.com/more",
    ],
)
def test_model_source_list_replaced(tail):
    result = check_citations(f"# Executive Summary\n- Fact. [{A}]\n\n## Conclusion\nDone.\n\n{tail}\n", RETRIEVED)
    assert "evil.com" not in result.text
    assert result.text.endswith(f"## Conclusion\nDone.\n\n## Sources used\n\n1. {A}\n")
    assert result.text.count("Sources used") == 1
    assert result.kept == [A] and result.removed == []  # a listed URL is not a citation


def test_sources_heading_in_the_middle_is_kept():
    report = "## Sources\nWe used three kinds of sources.\n\n## Conclusion\nDone."
    assert strip_sources_section(report) == report
    # a "Sources:" line followed by prose is not a source list either
    prose = "## Conclusion\nSources: the ministry and two newspapers agree on the figure."
    assert strip_sources_section(prose) == prose


def test_sources_heading_inside_code_is_ignored():
    report = "Intro\n```\n## Sources used\n```\nMore"
    assert strip_sources_section(report) == report


def test_sources_section_lists_titles_with_urls():
    sources = [{"url": A, "title": "A page"}, {"url": C, "title": ""}, {"url": B, "title": "*Bold* [x]"}]
    assert sources_section(sources) == f"## Sources used\n\n1. [A page](<{A}>)\n2. {C}\n3. [\\*Bold\\* \\[x\\]](<{B}>)"


def test_kept_sources_carry_the_titles_retrieved():
    result = check_citations(f"x [{C}] y [{A}]", [{"url": A, "title": "Alpha"}, {"url": C, "title": "Gamma"}])
    assert result.sources == [{"url": C, "title": "Gamma"}, {"url": A, "title": "Alpha"}]
    assert result.text.endswith(f"## Sources used\n\n1. [Gamma](<{C}>)\n2. [Alpha](<{A}>)\n")


def test_retrieved_sources_come_from_what_read_stored():
    """Titles and URLs are taken from the tool results' artifacts (no URL is parsed from text);
    a page's own title beats its search hit's; failed calls retrieved nothing."""
    def result(name, sources, ok=True, text="[https://in-text-only.example/]"):
        return ToolMessage(text, tool_call_id=name + str(len(sources)), name=name, status="success" if ok else "error",
                           artifact={"sources": sources})
    messages = [
        result("search_urls", [{"url": A, "title": "hit A"}, {"url": B, "title": "hit B"}]),
        result("query_url", [{"url": A, "title": "Page A"}]),
        result("query_url", [{"url": C, "title": "C"}], ok=False),
    ]
    assert retrieved_sources(messages) == [{"url": A, "title": "Page A"}, {"url": B, "title": "hit B"}]


def test_result_is_json_primitive():
    result = check_citations(f"x [{A}] [https://evil.com/] [http://a.com/x/]", RETRIEVED)
    data = json.loads(json.dumps(result.as_dict()))
    assert set(data) == {"kept", "removed", "unused", "unsourced", "sources", "removed_urls", "normalized"}
    assert data["sources"] == [{"url": A, "title": ""}] and data["kept"] == 1


def test_citations_inside_link_text_are_checked():
    result = check_citations(f"[see [https://evil.com/a] here]({A})", RETRIEVED)
    assert body(result.text) == f"[see here]({A})"
    assert result.removed == ["https://evil.com/a"]
    after_code = check_citations("Run `ls` [https://evil.com/x] now.", RETRIEVED)
    assert body(after_code.text) == "Run `ls` [unsourced] now."


def test_check_is_idempotent():
    report = (
        f"# Executive Summary\n- One [{A}, https://evil.com/]. Two [B](https://b.org/page#x).\n"
        f"- <{C}> and [https://a.com/x/] and [prose https://a.com]\n\n## Sources\n- {A}\n"
    )
    once = check_citations(report, RETRIEVED)
    twice = check_citations(once.text, RETRIEVED)
    assert twice.text == once.text
    assert twice.kept == once.kept and twice.removed == [] and twice.normalized == {}

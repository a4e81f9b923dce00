"""Realistic HTML pages for bench/read_pipeline.py, generated at run time (deterministic per seed).

Every page sits in the chrome of a real site: a head full of meta tags, inline CSS, JSON-LD and
analytics scripts; a mega-menu, a cookie banner, breadcrumbs, ad slots, a sidebar, related posts,
comments, a newsletter form and a link-heavy footer. Bodies hold headings, lists, tables, code,
figures and definition lists, padded with topical filler so that the goal's words also appear in
passages that do not answer it. Each page plants facts; a :class:`Case` is a goal and the exact
string that answers it, and on API references and long tables (bench/read_pages_docs.py) the name
the answer belongs to (a signature, a term, a header row, a list's lead-in).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from html import escape

from bench import read_pages_docs  # noqa: F401  (registers its pages in BUILDERS)
from bench.read_pages import BUILDERS


@dataclass(frozen=True)
class Case:
    goal: str
    answer: str
    name: str = ""  # what the answer belongs to, which the evidence must also show ("" if nothing)


@dataclass(frozen=True)
class Fixture:
    name: str
    html: str
    cases: tuple[Case, ...]


# ---- filler ---------------------------------------------------------------------------------

PLACES = ["Rivertown", "Port Ellis", "Skarra", "Hexham", "Northshire", "Millbank", "Awen Valley", "Eastbrook",
          "Wexley", "Craigmoor", "Alder Green", "Kestrel Point"]
PEOPLE = ["Harriet Molyneux", "Thomas Pryce", "Ana Lopes", "Rafael Duarte", "Mei Takahashi", "Owen Hughes",
          "Sara Lindqvist", "Kwame Mensah", "Lucia Ferri", "Dmitri Volkov", "Priya Raman", "Jonas Weber"]
TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {  # nouns, verbs (past), adjectives
    "transport": (["tram", "line", "station", "council", "route", "depot", "passenger", "timetable", "fare",
                   "junction", "platform", "service"],
                  ["extended", "approved", "delayed", "reviewed", "funded", "opened", "closed", "rerouted"],
                  ["new", "proposed", "busy", "regional", "electric", "overcrowded", "temporary"]),
    "railway": (["railway", "locomotive", "viaduct", "tunnel", "engineer", "passenger", "goods train", "branch line",
                 "signal box", "station", "company", "shareholder"],
                ["opened", "closed", "surveyed", "built", "extended", "sold", "rebuilt", "abandoned"],
                ["narrow", "steep", "profitable", "disused", "original", "single-track", "Victorian"]),
    "tech": (["phone", "battery", "camera", "display", "processor", "firmware", "charger", "sensor", "update",
              "setting", "device", "screen"],
             ["improved", "reduced", "shipped", "tested", "reviewed", "updated", "benchmarked", "replaced"],
             ["fast", "bright", "flagship", "budget", "wireless", "stable", "buggy"]),
    "nature": (["lake", "river", "glacier", "trout", "valley", "survey", "shoreline", "forest", "island",
                "wetland", "species", "catchment"],
               ["measured", "recorded", "surveyed", "observed", "protected", "drained", "restocked", "mapped"],
               ["deep", "glacial", "cold", "remote", "shallow", "northern", "seasonal"]),
    "business": (["revenue", "margin", "quarter", "customer", "segment", "guidance", "contract", "analyst",
                  "subscription", "region", "cost", "forecast"],
                 ["grew", "declined", "expanded", "signed", "reported", "raised", "lowered", "beat"],
                 ["recurring", "annual", "operating", "strong", "weak", "adjusted", "quarterly"]),
    "culture": (["museum", "exhibition", "collection", "curator", "artefact", "gallery", "visitor", "film",
                 "director", "festival", "archive", "performance"],
                ["displayed", "acquired", "restored", "premiered", "loaned", "catalogued", "reviewed", "toured"],
                ["rare", "medieval", "acclaimed", "temporary", "permanent", "silver", "independent"]),
    "food": (["dough", "loaf", "oven", "flour", "starter", "crust", "recipe", "kitchen", "bowl", "baker",
              "water", "tin"],
             ["mixed", "proved", "baked", "folded", "shaped", "rested", "scored", "cooled"],
             ["crisp", "golden", "wholemeal", "sticky", "warm", "overnight", "rustic"]),
    "law": (["agreement", "party", "service", "liability", "notice", "clause", "subscription", "customer",
             "provider", "payment", "term", "dispute"],
            ["terminated", "amended", "suspended", "limited", "assigned", "renewed", "disclosed", "waived"],
            ["written", "applicable", "reasonable", "material", "prior", "exclusive", "confidential"]),
}
TEMPLATES = [
    "The {a} {n1} was {v} near {place} in {year}, which {person} described as a turning point for the {n2}.",
    "In {year}, {person} {v} the {n1} after a long argument about the {a} {n2}.",
    "Local reports from {place} suggest the {n1} {v} more than once before the {n2} was {v2}.",
    "Critics noted that the {a} {n1} {v} {num} {n2}s over the following decade.",
    "According to {person}, the {n2} at {place} was {a} but never {v}.",
    "Some {n1}s in {place} were {v} during {year}, and others were {v2} soon after.",
    "A {a} {n1} is still remembered in {place}, where the {n2} was {v} in {year}.",
    "Records kept by {person} list {num} {a} {n1}s and a single {n2}.",
    "The {n1} and the {n2} were {v} together, as was common in {place} at the time.",
    "Visitors to {place} often ask about the {a} {n1}; the answer depends on the {n2}.",
    "Between {year} and {year2}, the {n1} of {place} {v} its {a} {n2} twice.",
    "Nobody at {place} agreed on whether the {n1} had been {v} or merely {v2}.",
]


class Filler:
    """Plausible topical prose (never containing the planted facts)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def sentence(self, topic: str) -> str:
        nouns, verbs, adjs = TOPICS[topic]
        r = self.rng
        year = r.randint(1850, 2023)
        return r.choice(TEMPLATES).format(
            a=r.choice(adjs), n1=r.choice(nouns), n2=r.choice(nouns), v=r.choice(verbs), v2=r.choice(verbs),
            place=r.choice(PLACES), person=r.choice(PEOPLE), year=year, year2=year + r.randint(1, 30),
            num=r.randint(2, 90),
        )

    def para(self, topic: str, sentences: int = 5, *, links: bool = True) -> str:
        parts = [escape(self.sentence(topic)) for _ in range(sentences)]
        if links and len(parts) > 2:  # inline markup, as real paragraphs have
            parts[1] = f'<a href="/wiki/{self.rng.randint(1, 9999)}">{parts[1]}</a>'
            parts[2] = f"<em>{parts[2]}</em><sup class=\"reference\">[{self.rng.randint(1, 80)}]</sup>"
        return "<p>" + " ".join(parts) + "</p>"

    def paras(self, topic: str, n: int) -> str:
        return "\n".join(self.para(topic, self.rng.randint(3, 7)) for _ in range(n))

    def words(self, n: int) -> str:
        nouns = [w for ws in TOPICS.values() for w in ws[0]]
        return " ".join(self.rng.choice(nouns) for _ in range(n)).capitalize()


# ---- site chrome ----------------------------------------------------------------------------


def _css(rng: random.Random, kb: int) -> str:
    rules = []
    while sum(map(len, rules)) < kb * 1000:
        sel = rng.choice([".site-header", ".nav__item", ".card", ".btn--primary", "#main", ".footer a", ".grid-col"])
        rules.append(f"{sel}-{rng.randint(1, 999)}{{margin:{rng.randint(0, 40)}px;color:#{rng.randint(0, 0xFFFFFF):06x};"
                     f"font-size:{rng.randint(10, 30)}px;display:flex}}")
    return "".join(rules)


def _script(rng: random.Random, kb: int) -> str:
    calls = []
    while sum(map(len, calls)) < kb * 1000:
        calls.append(f"window.__tracker.push({{event:'v{rng.randint(1, 9999)}',ts:{rng.randint(10**9, 10**10)},"
                     f"cfg:'{rng.getrandbits(64):x}'}});")
    return "".join(calls)


def _links(rng: random.Random, n: int, filler: Filler, cls: str = "") -> str:
    items = "".join(f'<li class="{cls}"><a href="/{rng.randint(1, 99999)}">{filler.words(rng.randint(1, 3))}</a></li>'
                    for _ in range(n))
    return f"<ul>{items}</ul>"


def page(title: str, body: str, rng: random.Random, *, site: str = "Rivertown Herald", nav: int = 80,
         comments: int = 5, css_kb: int = 6, js_kb: int = 12, sidebar: bool = True, lite: bool = False) -> str:
    """``body`` (the main content) inside a full site page."""
    filler = Filler(rng)
    head = (
        f'<head><meta charset="utf-8"><title>{escape(title)} | {site}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        + "".join(f'<meta property="og:{k}" content="{escape(title)}">' for k in ("title", "description", "site_name"))
        + '<link rel="stylesheet" href="/static/main.css"><link rel="preload" href="/static/font.woff2" as="font">'
        + f"<style>{_css(rng, css_kb)}</style>"
        + '<script type="application/ld+json">' + json.dumps({"@type": "Article", "headline": title}) + "</script>"
        + f"<script>{_script(rng, js_kb)}</script></head>"
    )
    if lite:
        return f"<!DOCTYPE html><html lang=\"en\">{head}<body><main>{body}</main></body></html>"
    mega = "".join(f'<li class="menu-item"><a href="/s{i}">{filler.words(1)}</a>{_links(rng, 6, filler, "sub")}</li>'
                   for i in range(max(1, nav // 7)))
    header = (f'<a class="skip-link" href="#main">Skip to content</a><header class="site-header"><a class="logo" '
              f'href="/">{site}</a><nav class="main-nav" aria-label="Main"><ul class="menu">{mega}</ul></nav>'
              '<form class="search-form" action="/search"><input name="q"><button>Search</button></form></header>'
              '<div id="cookie-consent" class="cookie-consent"><p>We and our 842 partners use cookies to personalise '
              'content and ads. Accept all cookies?</p><button>Accept</button><button>Manage</button></div>'
              f'<ol class="breadcrumbs"><li><a href="/">Home</a></li><li><a href="/news">News</a></li>'
              f"<li>{escape(title)}</li></ol>")
    ads = '<div class="ad-slot" data-slot="mpu"><span>Advertisement</span><iframe src="/ads/x"></iframe></div>'
    side = (f'<aside class="sidebar"><h3>Most read</h3>{_links(rng, 12, filler)}{ads}<h3>Topics</h3>'
            f"{_links(rng, 20, filler)}</aside>") if sidebar else ""
    related = "".join(f'<div class="card"><a href="/r{i}"><img src="/img/{i}.jpg" alt=""><h4>{filler.words(6)}</h4>'
                      f"</a><p>{filler.words(14)}</p></div>" for i in range(6))
    thread = "".join(f'<li class="comment"><span class="author">{rng.choice(PEOPLE)}</span>'
                     f'<p>{escape(filler.sentence(rng.choice(list(TOPICS))))}</p><a href="#reply">Reply</a></li>'
                     for _ in range(comments))
    footer_cols = "".join(f'<div class="footer-col"><h4>{filler.words(2)}</h4>{_links(rng, 15, filler)}</div>'
                          for _ in range(4))
    return (
        f'<!DOCTYPE html><html lang="en">{head}<body class="article-page">{header}'
        f'<div class="layout"><main id="main"><article class="post">{body}</article>{ads}'
        f'<section class="share-buttons"><a href="#">Share</a><a href="#">Tweet</a></section>'
        f'<section class="related-articles"><h3>More from {site}</h3>{related}</section>'
        f'<section id="comments" class="comments"><h3>{comments} comments</h3><ol>{thread}</ol></section>'
        f"</main>{side}</div>"
        f'<div class="newsletter"><h3>Get the morning briefing</h3><form><input type="email"><button>Sign up'
        f"</button></form></div>"
        f'<footer class="site-footer">{footer_cols}<p>&copy; 2025 {site}. All rights reserved.</p></footer>'
        f"<script>{_script(rng, 3)}</script></body></html>"
    )


def fixtures(seed: int = 7) -> list[Fixture]:
    """The benchmark pages, each built from its own seeded generator."""
    out = []
    for index, (name, build) in enumerate(BUILDERS.items()):
        rng = random.Random(seed * 1000 + index)
        title, body, cases, options = build(Filler(rng), rng)
        out.append(Fixture(name, page(title, body, rng, **options), tuple(Case(*case) for case in cases)))
    return out

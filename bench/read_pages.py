"""The page bodies of bench/read_fixtures.py: one builder per kind of page, each planting facts.

A builder gets a :class:`~bench.read_fixtures.Filler` and a seeded ``random.Random`` and returns
``(title, body_html, [(goal, answer), ...], page_options)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.read_fixtures import Filler

Built = tuple[str, str, list[tuple[str, str]], dict[str, Any]]
BUILDERS: dict[str, Callable[[Filler, random.Random], Built]] = {}


def builder(fn: Callable[[Filler, random.Random], Built]) -> Callable[[Filler, random.Random], Built]:
    BUILDERS[fn.__name__] = fn
    return fn


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "", cls: str = "wikitable") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'<table class="{cls}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def ul(items: Sequence[str], ordered: bool = False) -> str:
    tag = "ol" if ordered else "ul"
    return f"<{tag}>" + "".join(f"<li>{i}</li>" for i in items) + f"</{tag}>"


def sections(f: Filler, topic: str, titles: Sequence[str], planted: dict[int, str], paras: tuple[int, int] = (2, 4),
             level: int = 2) -> str:
    """Sections of filler; ``planted[i]`` (a paragraph) goes into section ``i``."""
    out = []
    for i, title in enumerate(titles):
        out.append(f"<h{level}>{escape(title)}</h{level}>" + f.paras(topic, f.rng.randint(*paras)))
        if i in planted:
            out.append(planted[i] + f.paras(topic, 1))
    return "\n".join(out)


@builder
def news_tram(f: Filler, r: random.Random) -> Built:
    body = ("<h1>City council approves Line 4 tram extension</h1><p class=\"byline\">By Ana Lopes, 3 March 2025</p>"
            + f.paras("transport", 3)
            + "<p>After a six-hour debate the council voted 31 to 12 on Tuesday to extend the Line 4 tram by "
            "6.2 kilometres to the airport, with four new stops.</p>" + f.paras("transport", 4)
            + "<blockquote><p>\u201cThis is the biggest transport investment in a generation,\u201d said the chair."
            "</p></blockquote><p>Construction is expected to start in 2026<br>and finish in 2029, the council said."
            "</p>" + f.paras("transport", 3))
    return ("City council approves tram extension", body, [
        ("How did the council vote on the Line 4 tram extension?", "31 to 12"),
        ("How long is the planned tram extension to the airport?", "6.2 kilometres"),
        ("When is construction of the tram extension expected to finish?", "finish in 2029"),
    ], {"comments": 40})


@builder
def wiki_lake(f: Filler, r: random.Random) -> Built:
    infobox = table(["Lake Vostrand", ""], [("Location", "Norrland, Sweden"), ("Surface area", "412 km2"),
                                            ("Max. depth", "221 m"), ("Surface elevation", "318 m")], cls="infobox")
    toc = '<div id="toc" class="toc"><h2>Contents</h2>' + ul([f"{i} {t}" for i, t in enumerate(
        ["Geography", "Ecology", "History", "Recreation"], 1)]) + "</div>"
    planted = {
        1: "<p>Arctic char and brown trout live in the lake. The population of arctic char was estimated at about "
           "80,000 in a 2019 survey by the county board.</p>",
        2: "<p>The first scientific sounding of the lake was made in 1911 by the hydrographer Elin Strand, who "
           "measured its greatest depth.</p>",
    }
    body = (f"<h1>Lake Vostrand</h1>{infobox}<p><b>Lake Vostrand</b> is a glacial lake in northern Sweden.</p>{toc}"
            + sections(f, "nature", ["Geography", "Ecology", "History", "Recreation", "See also"], planted)
            + '<div class="navbox">' + "".join(f"<a href='/l{i}'>{f.words(2)}</a> " for i in range(80)) + "</div>")
    return ("Lake Vostrand", body, [
        ("What is the maximum depth of Lake Vostrand?", "221 m"),
        ("Who made the first scientific sounding of Lake Vostrand?", "Elin Strand"),
        ("What was the estimated arctic char population in Lake Vostrand?", "80,000"),
    ], {"site": "Open Encyclopedia", "comments": 0})


@builder
def wiki_railway_long(f: Filler, r: random.Random) -> Built:
    titles = [f"{f.words(2)} ({1860 + i})" for i in range(110)]
    planted = {
        9: "<p>The company's first chief engineer was Josiah Penrose, who had worked under Brunel and laid out "
           "the line along the river.</p>",
        54: "<p>The Craigmoor Tunnel is 1,412 yards long and was the longest on the railway; it took four years "
            "to bore.</p>",
        83: "<p>The Awen Valley Railway closed to passengers on 9 September 1963, although goods traffic "
            "continued until 1968.</p>",
    }
    refs = ul([f"{f.words(8)}. Retrieved {r.randint(2005, 2024)}." for _ in range(150)], ordered=True)
    body = ("<h1>Awen Valley Railway</h1>" + sections(f, "railway", titles, planted, (3, 6))
            + f'<h2>References</h2><div class="reflist">{refs}</div>')
    return ("Awen Valley Railway", body, [
        ("When did the Awen Valley Railway close to passengers?", "9 September 1963"),
        ("Who was the first chief engineer of the Awen Valley Railway?", "Josiah Penrose"),
        ("How long is the Craigmoor Tunnel on the Awen Valley Railway?", "1,412 yards"),
    ], {"site": "Open Encyclopedia", "comments": 0})


@builder
def product_phone(f: Filler, r: random.Random) -> Built:
    specs = [("Display", "6.4-inch OLED, 120 Hz"), ("Processor", "Octa-core 3.1 GHz"), ("Battery", "4,850 mAh"),
             ("Weight", "186 g"), ("Dimensions", "152 x 71 x 8.1 mm"), ("Storage", "256 GB")]
    specs += [(f.words(2), f"{r.randint(1, 999)} {f.words(1)}") for _ in range(30)]
    r.shuffle(specs)
    body = ("<h1>Nimbus X2</h1><div class=\"price\"><p>Launch price: $649 (unlocked)</p></div>"
            + f.paras("tech", 3) + "<h2>Specifications</h2>" + table(["Feature", "Nimbus X2"], specs, cls="specs")
            + "<h2>Reviews</h2>" + f.paras("tech", 8))
    return ("Nimbus X2 \u2013 specs and price", body, [
        ("What is the battery capacity of the Nimbus X2 phone?", "4,850 mAh"),
        ("How much does the Nimbus X2 weigh?", "186 g"),
        ("What is the launch price of the Nimbus X2?", "$649"),
    ], {"site": "GadgetShop", "comments": 25})


@builder
def recipe_sourdough(f: Filler, r: random.Random) -> Built:
    story = f.paras("food", 9)  # the life story before the recipe
    ingredients = ul(["500 g strong white flour", "350 g water", "100 g active starter", "10 g salt"])
    steps = ul([escape(f.sentence("food")) for _ in range(4)] + [
        "Bake the loaf in a preheated Dutch oven for 20 minutes with the lid on, then 25 minutes with the lid off."
    ] + [escape(f.sentence("food")) for _ in range(3)], ordered=True)
    body = (f"<h1>Everyday sourdough</h1>{story}<h2>Ingredients</h2>{ingredients}<h2>Method</h2>{steps}"
            + f.paras("food", 3))
    return ("Everyday sourdough", body, [
        ("How long should the sourdough loaf bake with the lid on?", "20 minutes with the lid on"),
        ("How much salt goes into the sourdough?", "10 g salt"),
    ], {"site": "Crumb & Crust", "comments": 60})


@builder
def docs_api(f: Filler, r: random.Random) -> Built:
    nav = '<nav class="docs-nav">' + "".join(f"<a href='/api/{i}'>{f.words(2)}</a>" for i in range(300)) + "</nav>"
    code = ("<pre><code>from webkit import fetch_page\n\npage = fetch_page(url, timeout=30)\n"
            "print(page.status)\n</code></pre>")
    params = table(["Parameter", "Type", "Description"], [
        ("url", "str", "The address to fetch."),
        ("timeout", "float", "Seconds to wait for the whole response; the default timeout is 30 seconds."),
        ("max_bytes", "int", "Largest body accepted; a larger response raises PayloadTooLarge."),
    ] + [(f.words(1).lower(), "str", f.words(9)) for _ in range(12)], cls="params")
    other = "".join(f"<h3><code>{f.words(1).lower()}_{i}()</code></h3>" + f.paras("tech", 2) for i in range(25))
    body = (f"{nav}<h1>fetch_page</h1><p>Fetches one page over HTTP with retries.</p>{code}<h2>Parameters</h2>"
            f"{params}<h2>Retries</h2><p>Responses with status 429, 502, 503 are retried three times with "
            f"exponential backoff; other errors are raised at once.</p><h2>Related functions</h2>{other}")
    return ("fetch_page \u2013 webkit 5.1 documentation", body, [
        ("What is the default timeout of the fetch_page function?", "30 seconds"),
        ("What exception does fetch_page raise when the response is too large?", "PayloadTooLarge"),
        ("Which HTTP status codes does fetch_page retry?", "429, 502, 503"),
    ], {"site": "webkit docs", "comments": 0, "sidebar": False})


@builder
def forum_bootloop(f: Filler, r: random.Random) -> Built:
    posts = []
    for i in range(45):
        text = f.paras("tech", r.randint(1, 3))
        if i == 17:
            text = ("<p>What finally worked for me: power it off, then hold the volume-down button for 15 seconds "
                    "while plugging in the charger. That ends the boot loop after the firmware 3.2 update.</p>" + text)
        if i == 31:
            text = "<p>Update: firmware 3.2.1 fixed the boot loop for everyone in our office.</p>" + text
        posts.append(f'<div class="post" id="p{i}"><div class="post-author">{r.choice(["mkhan", "zed77", "luna"])}'
                     f'</div><div class="post-body">{text}</div><div class="post-footer">Like \u00b7 Quote</div></div>')
    body = "<h1>Boot loop after firmware 3.2 update</h1>" + "".join(posts)
    return ("Boot loop after firmware 3.2 update \u2013 Nimbus forums", body, [
        ("How did users fix the boot loop after the firmware 3.2 update?", "hold the volume-down button for 15 seconds"),
        ("Which firmware version fixed the boot loop?", "3.2.1"),
    ], {"site": "Nimbus Community", "comments": 0})


@builder
def gov_census_table(f: Filler, r: random.Random) -> Built:
    rows = []
    for i in range(2400):
        name = f"{f.words(1)}{r.choice(['ton', 'by', 'ham', 'ford', 'wick'])} {i}"
        rows.append((name, r.choice(["Northshire", "Southmoor", "Westdale"]), f"{r.randint(800, 90000):,}",
                     f"\u00a3{r.randint(18000, 60000):,}", f"{r.uniform(0.5, 9):.1f}%"))
    rows.insert(1337, ("Eastbrook", "Northshire", "48,317", "\u00a327,905", "3.1%"))
    rows.insert(1900, ("Wexley", "Westdale", "12,066", "\u00a331,540", "4.4%"))
    body = ("<h1>Census 2021: population and income by municipality</h1>" + f.paras("business", 3)
            + table(["Municipality", "County", "Population (2021)", "Median household income", "Unemployment"],
                    rows, caption="Table 4. Municipalities") + f.paras("business", 2))
    return ("Census 2021 municipal tables", body, [
        ("What was the population of Eastbrook in the 2021 census?", "48,317"),
        ("What was the median household income in Wexley?", "\u00a331,540"),
    ], {"site": "Statistics Office", "comments": 0})


@builder
def sports_cup_final(f: Filler, r: random.Random) -> Built:
    teams = ["Rivertown Rovers", "Hexham United", "Port Ellis Athletic", "Skarra FC", "Millbank Town"]
    results = [(f"{r.randint(1, 28)} May", r.choice(teams), f"{r.randint(0, 4)}\u2013{r.randint(0, 4)}",
                r.choice(teams)) for _ in range(120)]
    body = ("<h1>Rovers lift the County Cup</h1>" + f.paras("culture", 3)
            + "<p>Rivertown Rovers beat Hexham United 3\u20131 in the cup final at Millbank Park on Saturday.</p>"
            + "<p>Tom\u00e1s Reyes scored the winning goal in the 78th minute with a header from a corner.</p>"
            + f.paras("culture", 3) + "<h2>All results this season</h2>"
            + table(["Date", "Home", "Score", "Away"], results))
    return ("Rovers lift the County Cup", body, [
        ("What was the score of the cup final between Rivertown Rovers and Hexham United?", "3\u20131"),
        ("Who scored the winning goal in the cup final?", "Tom\u00e1s Reyes"),
    ], {"site": "County Sport", "comments": 80})


@builder
def finance_q3(f: Filler, r: random.Random) -> Built:
    quarters = table(["Metric", "Q3 2023", "Q3 2024", "Change"], [
        ("Revenue", "$356.1 million", "$412.7 million", "+15.9%"),
        ("Operating margin", "18.2%", "21.4%", "+3.2 pts"),
    ] + [(f.words(2), f"${r.randint(1, 300)}.{r.randint(0, 9)} million", f"${r.randint(1, 300)}.{r.randint(0, 9)} "
          "million", f"{r.uniform(-20, 20):+.1f}%") for _ in range(25)], caption="Selected results")
    body = ("<h1>Corvid Systems reports third quarter 2024 results</h1>" + f.paras("business", 5) + quarters
            + "<h2>Outlook</h2><p>Corvid Systems raised its full-year guidance for 2024 to revenue of $1.62 billion, "
            "from $1.55 billion.</p>" + f.paras("business", 8))
    return ("Corvid Systems Q3 2024 results", body, [
        ("What was Corvid Systems' revenue in Q3 2024?", "$412.7 million"),
        ("What is Corvid Systems' full-year revenue guidance for 2024?", "$1.62 billion"),
    ], {"site": "Corvid Investor Relations", "comments": 0})


@builder
def faq_returns(f: Filler, r: random.Random) -> Built:
    qa = [("How many days do I have to return an item?", "You can return any item within 45 days of delivery for "
           "a full refund."),
          ("Do you ship internationally?", "We currently ship to Canada and Mexico; other countries are coming soon.")]
    qa += [(f.words(6) + "?", escape(f.sentence("business"))) for _ in range(40)]
    r.shuffle(qa)
    body = "<h1>Frequently asked questions</h1><dl>" + "".join(f"<dt>{q}</dt><dd>{a}</dd>" for q, a in qa) + "</dl>"
    return ("Help centre: FAQ", body, [
        ("How many days does a customer have to return an item?", "45 days"),
        ("Which countries does the store ship to outside the US?", "Canada and Mexico"),
    ], {"site": "Outfitters", "comments": 0})


@builder
def changelog(f: Filler, r: random.Random) -> Built:
    parts = []
    for minor in range(9, -1, -1):
        for patch in range(9, -1, -1):
            version = f"4.{minor}.{patch}"
            date = "2023-03-14" if version == "4.2.0" else f"20{r.randint(19, 24)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
            items = [escape(f.sentence("tech")) for _ in range(r.randint(2, 6))]
            if version == "4.7.0":
                items.insert(0, "Dropped support for Python 3.8; the minimum is now Python 3.9.")
            parts.append(f"<h2>{version} ({date})</h2>" + ul(items))
    body = "<h1>Changelog</h1>" + "".join(parts)
    return ("Changelog \u2013 webkit", body, [
        ("In which version was support for Python 3.8 dropped?", "4.7.0"),
        ("When was version 4.2.0 released?", "2023-03-14"),
    ], {"site": "webkit docs", "comments": 0, "sidebar": False})


@builder
def blog_astro(f: Filler, r: random.Random) -> Built:
    figs = "".join(f'<figure><img src="/p/{i}.jpg" alt="night sky"><figcaption>{f.words(5)}</figcaption></figure>'
                   for i in range(8))
    body = ("<h1>Chasing the Milky Way in the Atacama</h1>" + f.paras("nature", 6)
            + "<p>We drove up to the ridge below Cerro Armazones, where the sky is darker than anywhere I have "
            "shot before.</p>" + figs + "<h2>Gear and settings</h2><p>All the Milky Way photos were shot at ISO 3200, "
            "f/2.8 and 20 seconds on a 14 mm lens.</p>" + f.paras("nature", 5))
    return ("Chasing the Milky Way", body, [
        ("What camera settings did the author use for the Milky Way photos?", "ISO 3200"),
        ("Where were the Milky Way photos taken?", "Cerro Armazones"),
    ], {"site": "Far Light blog", "comments": 120})


@builder
def course_catalog(f: Filler, r: random.Random) -> Built:
    courses = []
    for i in range(320):
        code = f"{r.choice(['ENV', 'HIS', 'CS', 'ECO', 'BIO'])} {100 + i}"
        name, credits, teacher = f.words(3), f"{r.randint(2, 6)} credits", f"Dr. {r.choice(['A.', 'B.', 'K.'])} {f.words(1)}"
        if i == 77:
            code, name, credits = "ENV 412", "Advanced Hydrology", "4 credits"
        if i == 251:
            name, teacher = "Medieval Trade Networks", "Dr. Amara Okafor"
        courses.append(f'<div class="course"><h3>{code}: {escape(name)}</h3><p class="meta">{credits} \u00b7 '
                       f"Taught by {escape(teacher)}</p>{f.para('culture', 3, links=False)}</div>")
    body = "<h1>Course catalogue 2025\u201326</h1>" + "".join(courses)
    return ("Course catalogue", body, [
        ("How many credits is Advanced Hydrology (ENV 412)?", "4 credits"),
        ("Who teaches Medieval Trade Networks?", "Dr. Amara Okafor"),
    ], {"site": "Northshire University", "comments": 0})


@builder
def travel_skarra(f: Filler, r: random.Random) -> Built:
    ferries = table(["Route", "Duration", "Daily sailings"], [("Port Ellis \u2013 Skarra", "2 hours 40 minutes", 3)]
                    + [(f"{r.choice(['Hexham', 'Millbank'])} \u2013 {f.words(1)}", f"{r.randint(1, 5)} hours", r.randint(1, 6))
                       for _ in range(12)], caption="Ferries")
    body = ("<h1>Skarra travel guide</h1>" + f.paras("nature", 4) + "<h2>Getting there</h2>" + ferries
            + f.paras("transport", 3) + "<h2>Sights</h2><p>The Skarra lighthouse is open from April to October; the "
            "entrance fee is \u20ac6 for adults and free for children.</p>" + f.paras("culture", 6))
    return ("Skarra travel guide", body, [
        ("How long does the ferry from Port Ellis to Skarra take?", "2 hours 40 minutes"),
        ("What is the entrance fee for the Skarra lighthouse?", "\u20ac6"),
    ], {"site": "Wander", "comments": 15})


@builder
def paper_landing(f: Filler, r: random.Random) -> Built:
    refs = ul([f"{r.choice(['Smith', 'Lee', 'Okafor'])} et al. {f.words(7)}. {r.randint(1990, 2024)}." for _ in range(90)],
              ordered=True)
    body = ("<h1>Evening light exposure and sleep onset in adolescents</h1><p class=\"journal\">Journal of Sleep "
            "Research, 2024</p><h2>Abstract</h2><p>In a cohort of 1,204 participants aged 13 to 18, evening light "
            "exposure delayed sleep onset by 23 minutes on average.</p>" + f.paras("nature", 6)
            + f"<h2>References</h2>{refs}")
    return ("Evening light exposure and sleep onset", body, [
        ("How many participants were in the adolescent sleep study?", "1,204 participants"),
        ("By how much did evening light delay sleep onset?", "23 minutes"),
    ], {"site": "Journal of Sleep Research", "comments": 0})


@builder
def timeline_observatory(f: Filler, r: random.Random) -> Built:
    events = [f"{1850 + i * 3}: {escape(f.sentence('culture'))}" for i in range(50)]
    events.insert(4, "1862: The Rivertown Observatory was founded by the Philosophical Society.")
    events.insert(27, "1931: The observatory's main telescope was replaced with a 24-inch reflector.")
    body = "<h1>History of the Rivertown Observatory</h1>" + f.paras("culture", 2) + ul(events, ordered=True)
    return ("History of the Rivertown Observatory", body, [
        ("When was the Rivertown Observatory founded?", "1862"),
        ("When was the observatory's main telescope replaced?", "1931"),
    ], {"site": "Rivertown Heritage", "comments": 0})


@builder
def legal_terms(f: Filler, r: random.Random) -> Built:
    clauses = []
    for n in range(1, 41):
        subs = [f"{n}.{m} {escape(f.sentence('law'))} {escape(f.sentence('law'))}" for m in range(1, r.randint(4, 9))]
        if n == 12:
            subs.insert(0, f"{n}.0 Either party may cancel the subscription by giving 30 days' written notice.")
        if n == 37:
            subs.insert(0, f"{n}.0 This agreement is governed by the laws of Scotland.")
        clauses.append(f"<h2>{n}. {f.words(2)}</h2>" + "".join(f"<p>{s}</p>" for s in subs))
    body = "<h1>Terms of service</h1>" + "".join(clauses)
    return ("Terms of service", body, [
        ("What is the notice period for cancelling the subscription?", "30 days' written notice"),
        ("Which law governs the agreement?", "laws of Scotland"),
    ], {"site": "Cloudnest", "comments": 0})


@builder
def real_estate(f: Filler, r: random.Random) -> Built:
    body = ("<h1>14 Alder Lane, Alder Green</h1><p class=\"price\">Asking price: \u00a3575,000</p>"
            "<ul class=\"features\"><li>Detached house with four bedrooms</li><li>Two bathrooms</li>"
            "<li>South-facing garden</li></ul>" + f.paras("culture", 5)
            + table(["Room", "Size"], [(f.words(1), f"{r.uniform(2, 7):.1f} m x {r.uniform(2, 7):.1f} m") for _ in range(12)]))
    return ("14 Alder Lane", body, [
        ("How many bedrooms does the house at 14 Alder Lane have?", "four bedrooms"),
        ("What is the asking price for 14 Alder Lane?", "\u00a3575,000"),
    ], {"site": "Homes Direct", "comments": 0})


@builder
def climate_skarra(f: Filler, r: random.Random) -> Built:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    highs = [f"{r.uniform(1, 18):.1f}" for _ in months]
    highs[6] = "19.4"
    rain = [str(r.randint(40, 120)) for _ in months]
    rain[9] = "142"
    climate = table(["Climate data for Skarra", *months], [("Average high \u00b0C", *highs), ("Rainfall mm", *rain)])
    body = "<h1>Climate of Skarra</h1>" + f.paras("nature", 5) + climate + f.paras("nature", 4)
    return ("Climate of Skarra", body, [
        ("What is the average July high temperature in Skarra?", "19.4"),
        ("How much rain falls in Skarra in October?", "142"),
    ], {"site": "Open Encyclopedia", "comments": 0})


@builder
def museum_exhibit(f: Filler, r: random.Random) -> Built:
    body = ("<h1>Silver of the North: Viking hoards</h1><p>The exhibition brings together more than 300 objects "
            "from hoards found across Scandinavia.</p>" + f.paras("culture", 4)
            + table(["Dates", "Tickets"], [("Until 16 March 2025", "\u00a318, members free")], cls="visit")
            + f.paras("culture", 4))
    return ("Silver of the North", body, [
        ("When does the Viking silver exhibition close?", "16 March 2025"),
        ("How many objects are in the Viking silver exhibition?", "more than 300 objects"),
    ], {"site": "National Museum", "comments": 0})


@builder
def movie_page(f: Filler, r: random.Random) -> Built:
    cast = [("Ines Albrecht", "Captain Mirela Voss")] + [(f.words(2), f.words(2)) for _ in range(60)]
    body = ("<h1>The Long Tide (2022)</h1>" + f.paras("culture", 4)
            + table(["Actor", "Role"], cast, caption="Cast") + "<h2>Production</h2><p>The film was shot in Skarra "
            "on a budget of $38 million.</p>" + f.paras("culture", 6))
    return ("The Long Tide (2022)", body, [
        ("Who played Captain Mirela Voss in The Long Tide?", "Ines Albrecht"),
        ("What was the budget of The Long Tide?", "$38 million"),
    ], {"site": "FilmBase", "comments": 30})


@builder
def press_release(f: Filler, r: random.Random) -> Built:
    body = ("<h1>New Rivertown library to open in spring</h1><p>The new central library will open to the public on "
            "2 May 2026. The building cost \u00a314.2 million and houses 180,000 books.</p>" + f.paras("culture", 1))
    return ("New Rivertown library", body, [
        ("When will the new Rivertown library open?", "2 May 2026"),
        ("How much did the new Rivertown library cost?", "\u00a314.2 million"),
    ], {"lite": True, "css_kb": 3, "js_kb": 2})


@builder
def outage_mega_comments(f: Filler, r: random.Random) -> Built:
    body = ("<h1>Thousands lose power in Rivertown</h1>" + f.paras("transport", 2)
            + "<p>The outage was caused by a failed transformer at the Millbank substation, the network operator "
            "said, and 12,400 homes lost power for up to nine hours.</p>" + f.paras("transport", 2))
    return ("Thousands lose power in Rivertown", body, [
        ("What caused the power outage in Rivertown?", "a failed transformer at the Millbank substation"),
        ("How many homes lost power in the Rivertown outage?", "12,400 homes"),
    ], {"comments": 2200})

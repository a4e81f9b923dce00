"""A research run that reads GitHub, Wikipedia and a blocked page through the reader chain: fake
SGLang, fake sites, all on 127.0.0.1, each site's base URL injected by the settings.

Page reads resolve no host name (``no_dns``): the model's URLs name the real sites, and only the
readers' injected base URLs (loopback literals) can be reached.
"""

from __future__ import annotations

import dataclasses

from fathom.app.runs import run_question
from fathom.app.services import build_services, toolbox
from fathom.protocols.prompts.tools import READER_NOTES
from tests.conftest import call, fake_settings
from tests.fakes.sites import FakeSites
from tests.unit.tools.test_readers import no_dns, site_settings

QUESTION = "What fixed the calibrator overshoot, and how deep is Lake Vostrand?"
SITE_URLS = ("github_api_url", "github_raw_url", "reddit_url", "youtube_url", "arxiv_url", "wikipedia_url",
             "archive_url", "jina_url")


async def test_a_run_reads_site_pages_through_their_readers(sglang, searxng, web) -> None:
    with FakeSites() as sites:
        urls = {name: getattr(site_settings(sites), name) for name in SITE_URLS}
        settings = fake_settings(sglang, searxng, web, allow_hosts=[web.hostport, sites.hostport], **urls)
        issue, wiki = "https://github.com/acme/widgets/issues/17", "https://en.wikipedia.org/wiki/Lake_Vostrand"
        blocked = f"{sites.url}/live/blocked"
        sglang.add(
            "Read the issue, the article and the society page.</think>\n\n"
            + call("query_url", url=issue, goal="What fixed the calibrator overshoot?") + "\n"
            + call("query_url", url=wiki, goal="How deep is Lake Vostrand?") + "\n"
            + call("query_url", url=blocked, goal="When is the annual meeting?"),
            "Version 4.2.1 fixed it; the lake is 221 metres deep.</think>\n\n\\boxed{4.2.1; 221 m}",
        )
        async with build_services(settings) as services, toolbox(settings, resolver=no_dns) as tools:
            summary = await run_question(QUESTION, settings, run_id="readers1",
                                         services=dataclasses.replace(services, tools=tools))

    assert summary["status"] == "answered"
    assert [c["ok"] for c in summary["tool_calls"]] == [True, True, True]
    assert {issue, wiki, blocked} <= {s["url"] for s in summary["sources"]}
    prompt = sglang.prompts[-1]
    assert "Fixed in 4.2.1 by clamping after warm-up." in prompt
    assert "measured a depth of 221 metres" in prompt
    assert "second Tuesday of May" in prompt
    # The archived copy is labelled as such in what the model reads.
    assert READER_NOTES.archived(blocked, "2024-01-15 09:30 UTC", "HTTP 403 Forbidden") in prompt

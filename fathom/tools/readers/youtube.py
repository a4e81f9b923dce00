"""YouTube: a video's transcript (its caption track), else its title and description.

The watch page ``{youtube_url}/watch?v=ID`` carries the player response (title, channel,
description, caption tracks); the chosen track (English first, a manual track before an
automatic one) is read as timed text. Both requests go through the guarded fetcher, so the
caption URL the page names is vetted like any other hop.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import parse_qs, quote, urljoin

from fathom.tools.base import ToolError
from fathom.tools.extract import Document
from fathom.tools.fetch import Fetcher
from fathom.tools.readers.base import ReaderError, ReaderNotes, host_in, parts, path_segments

_PLAYER = re.compile(r"ytInitialPlayerResponse\s*=\s*")
_CUE = re.compile(r"<(?:text|p)\b[^>]*>(.*?)</(?:text|p)>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{6,20}")
MAX_DESCRIPTION_CHARS = 5000


class YouTubeReader:
    """Reads youtube.com and youtu.be video pages."""

    name = "youtube"

    def __init__(self, fetcher: Fetcher, *, base_url: str, notes: ReaderNotes, languages: tuple[str, ...] = ("en",),
                 timeout_s: float = 30.0) -> None:
        self.fetcher, self.base_url, self.timeout_s = fetcher, base_url.rstrip("/"), timeout_s
        self.notes = notes
        self.languages = languages

    def handles(self, host: str) -> bool:
        return host_in(host, "youtube.com", "youtu.be", "youtube-nocookie.com")

    async def read(self, url: str) -> Document | None:
        video = _video_id(url)
        if video is None:
            return None
        watch = f"{self.base_url}/watch?v={quote(video)}&hl=en"
        page = await self.fetcher.fetch(watch, headers={"Accept-Language": "en-US,en;q=0.8"})
        player = _player_response(page.text())
        details = player.get("videoDetails") or {}
        title = str(details.get("title") or f"YouTube video {video}")
        head = [f"# {title}", "", f"Channel: {details.get('author', '?')} · video {video}"]
        transcript = ""
        track = _pick_track(player, self.languages)
        if track is not None:
            try:
                captions = await self.fetcher.fetch(urljoin(page.final_url, str(track["baseUrl"])))
                transcript = _cues(captions.text())
            except ToolError:
                transcript = ""
        if transcript:
            body = f"## Transcript ({track.get('languageCode', '?') if track else '?'})\n\n{transcript}"
        else:
            description = str(details.get("shortDescription") or "").strip()
            if not description and not details:
                raise ReaderError("the page held no video details (the video may be private or removed)")
            body = f"{self.notes.no_transcript}\n\n## Description\n\n{description[:MAX_DESCRIPTION_CHARS] or '(none)'}"
        return Document(url=url, title=title, text="\n".join(head) + "\n\n" + body)


def _video_id(url: str) -> str | None:
    split = parts(url)
    seg = path_segments(url)
    host = (split.hostname or "").lower()
    candidate: str | None = None
    if host_in(host, "youtu.be"):
        candidate = seg[0] if seg else None
    elif seg and seg[0] == "watch":
        candidate = (parse_qs(split.query).get("v") or [None])[0]
    elif len(seg) >= 2 and seg[0] in ("shorts", "embed", "live", "v"):
        candidate = seg[1]
    return candidate if candidate and _VIDEO_ID.fullmatch(candidate) else None


def _player_response(page: str) -> dict[str, Any]:
    """The ``ytInitialPlayerResponse`` object of a watch page (``{}`` when it has none)."""
    match = _PLAYER.search(page)
    if not match:
        return {}
    try:
        value, _ = json.JSONDecoder().raw_decode(page, match.end())
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _pick_track(player: dict[str, Any], languages: tuple[str, ...]) -> dict[str, Any] | None:
    tracks = (((player.get("captions") or {}).get("playerCaptionsTracklistRenderer") or {})
              .get("captionTracks") or [])
    tracks = [t for t in tracks if isinstance(t, dict) and t.get("baseUrl")]
    if not tracks:
        return None

    def rank(track: dict[str, Any]) -> tuple[int, int]:
        code = str(track.get("languageCode") or "")
        lang = next((i for i, want in enumerate(languages) if code == want or code.startswith(want + "-")),
                    len(languages))
        return lang, 1 if track.get("kind") == "asr" else 0  # a manual track before an automatic one

    return min(tracks, key=rank)


def _cues(timed_text: str) -> str:
    """Timed-text XML (``<text>`` or ``<p>`` cues) as running text, a paragraph every ~20 cues."""
    cues = [" ".join(html.unescape(_TAG.sub("", html.unescape(c))).split()) for c in _CUE.findall(timed_text)]
    cues = [c for c in cues if c]
    return "\n\n".join(" ".join(cues[i:i + 20]) for i in range(0, len(cues), 20))

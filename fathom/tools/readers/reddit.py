"""Reddit: a post with its top comments, or a subreddit's hot posts, through the public JSON API.

``reddit.com/r/SUB/comments/ID/…`` becomes ``{reddit_url}/r/SUB/comments/ID/….json``: the post's
title, author and text, then its top-level comments by score (bounded in number and length).
A subreddit page lists its first posts the same way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fathom.tools.extract import Document
from fathom.tools.fetch import Fetcher
from fathom.tools.readers.base import ReaderError, clip, get_json, host_in, path_segments

MAX_COMMENTS = 20
MAX_POSTS = 15
MAX_POST_CHARS = 20_000
MAX_COMMENT_CHARS = 2_000


class RedditReader:
    """Reads reddit.com posts and subreddits through ``base_url``'s ``.json`` endpoints."""

    name = "reddit"

    def __init__(self, fetcher: Fetcher, *, base_url: str, timeout_s: float = 20.0) -> None:
        self.fetcher, self.base_url, self.timeout_s = fetcher, base_url.rstrip("/"), timeout_s

    def handles(self, host: str) -> bool:
        return host_in(host, "reddit.com", "redd.it")

    async def read(self, url: str) -> Document | None:
        seg = path_segments(url)
        if len(seg) >= 4 and seg[0] == "r" and seg[2] == "comments":
            return await self._post(url, "/".join(quote(s) for s in seg[:5]))
        if len(seg) in (2, 3) and seg[0] == "r" and (len(seg) == 2 or seg[2] in ("hot", "new", "top")):
            return await self._subreddit(url, "/".join(quote(s) for s in seg))
        return None

    async def _post(self, url: str, path: str) -> Document:
        data = await get_json(self.fetcher, f"{self.base_url}/{path}.json?limit={MAX_COMMENTS}&depth=1&sort=top&raw_json=1")
        if not (isinstance(data, list) and data and _children(data[0])):
            raise ReaderError("the answer held no post")
        post = _children(data[0])[0]
        lines = [f"# {post.get('title', '')}", "",
                 f"r/{post.get('subreddit', '?')} · posted by u/{post.get('author', '?')} · score {post.get('score', '?')}"]
        if post.get("url") and not post.get("is_self"):
            lines.append(f"Link: {post['url']}")
        lines += ["", clip(str(post.get("selftext") or ""), MAX_POST_CHARS) or "(no text)"]
        comments = [c for c in (_children(data[1]) if len(data) > 1 else []) if c.get("body")]
        comments.sort(key=lambda c: -int(c.get("score") or 0))
        if comments:
            lines += ["", "## Top comments"]
            for c in comments[:MAX_COMMENTS]:
                lines += ["", f"u/{c.get('author', '?')} (score {c.get('score', '?')}):",
                          clip(str(c["body"]), MAX_COMMENT_CHARS)]
        return Document(url=url, title=str(post.get("title") or url), text="\n".join(lines))

    async def _subreddit(self, url: str, path: str) -> Document:
        data = await get_json(self.fetcher, f"{self.base_url}/{path}.json?limit={MAX_POSTS}&raw_json=1")
        posts = _children(data)
        if not posts:
            raise ReaderError("the subreddit answered no posts")
        name = path.split("/")[1]
        lines = [f"# r/{name}"]
        for post in posts[:MAX_POSTS]:
            lines += ["", f"## {post.get('title', '')}",
                      f"u/{post.get('author', '?')} · score {post.get('score', '?')} · "
                      f"{post.get('num_comments', 0)} comments · https://www.reddit.com{post.get('permalink', '')}"]
            if post.get("selftext"):
                lines.append(clip(str(post["selftext"]), MAX_COMMENT_CHARS))
        return Document(url=url, title=f"r/{name}", text="\n".join(lines))


def _children(listing: Any) -> list[dict[str, Any]]:
    """The ``data`` of each child of a Reddit ``Listing`` (``[]`` for anything else)."""
    if not isinstance(listing, dict):
        return []
    children = (listing.get("data") or {}).get("children") or []
    return [c["data"] for c in children if isinstance(c, dict) and isinstance(c.get("data"), dict)]

"""GitHub: a repository's README, a file's raw text, an issue or pull request with its comments.

``github.com/OWNER/REPO`` (and ``/tree/REF``) reads the README through the REST API;
``/blob/REF/PATH`` reads the raw file; ``/issues/N`` and ``/pull/N`` read the title, body and
first comments through the API. ``GITHUB_TOKEN``, when set, goes to the API base URL only (the
fetcher drops it on a redirect elsewhere); raw files are read without it.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import quote

from fathom.tools.extract import Document, extract
from fathom.tools.fetch import Fetcher
from fathom.tools.readers.base import ReaderError, clip, get_json, path_segments

MAX_COMMENTS = 30
MAX_COMMENT_CHARS = 4000
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class GitHubReader:
    """Reads github.com pages through ``api_url`` (REST API) and ``raw_url`` (raw files)."""

    name = "github"

    def __init__(self, fetcher: Fetcher, *, api_url: str, raw_url: str, token: str | None = None,
                 timeout_s: float = 20.0) -> None:
        self.fetcher, self.api_url, self.raw_url = fetcher, api_url.rstrip("/"), raw_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s = timeout_s

    def handles(self, host: str) -> bool:
        return host in ("github.com", "www.github.com")  # not docs., gist., api. (pages of their own)

    async def read(self, url: str) -> Document | None:
        seg = path_segments(url)
        if len(seg) < 2 or seg[0] in _NOT_OWNERS:
            return None
        owner, repo = seg[0], seg[1].removesuffix(".git")
        rest = seg[2:]
        if not rest or (rest[0] == "tree" and len(rest) <= 2):
            return await self._readme(url, owner, repo, ref=rest[1] if len(rest) == 2 else None)
        if rest[0] in ("blob", "raw") and len(rest) >= 3:
            return await self._file(url, owner, repo, rest[1], "/".join(rest[2:]))
        if rest[0] in ("issues", "pull") and len(rest) >= 2 and rest[1].isdigit():
            return await self._issue(url, owner, repo, int(rest[1]), pull=rest[0] == "pull")
        return None

    async def _api(self, path: str) -> Any:
        return await get_json(self.fetcher, f"{self.api_url}{path}", {**API_HEADERS, **self._auth})

    async def _readme(self, url: str, owner: str, repo: str, *, ref: str | None = None) -> Document:
        repo_path = f"/repos/{quote(owner)}/{quote(repo)}"
        readme_path = f"{repo_path}/readme" + (f"?ref={quote(ref)}" if ref else "")  # a branch's or tag's own
        info, readme = await asyncio.gather(self._api(repo_path), self._api(readme_path))
        about = " ".join(str(info.get("description") or "").split()) if isinstance(info, dict) else ""
        if not isinstance(readme, dict) or readme.get("encoding") != "base64" or "content" not in readme:
            raise ReaderError("the API gave no README content")
        try:
            text = base64.b64decode(str(readme["content"])).decode("utf-8", errors="replace")
        except ValueError:
            raise ReaderError("the README content was not valid base64") from None
        head = f"# {owner}/{repo}\n\n{about}\n\n" if about else f"# {owner}/{repo}\n\n"
        return Document(url=url, title=f"{owner}/{repo}: {about}" if about else f"{owner}/{repo}",
                        text=head + text.strip())

    async def _file(self, url: str, owner: str, repo: str, ref: str, path: str) -> Document:
        page = await self.fetcher.fetch(f"{self.raw_url}/{quote(owner)}/{quote(repo)}/{quote(ref)}/{quote(path)}")
        doc = extract(page)
        return Document(url=url, title=doc.title or f"{owner}/{repo}: {path}", text=doc.text, truncated=doc.truncated)

    async def _issue(self, url: str, owner: str, repo: str, number: int, *, pull: bool) -> Document:
        base = f"/repos/{quote(owner)}/{quote(repo)}/issues/{number}"
        issue, comments = await asyncio.gather(self._api(base), self._api(f"{base}/comments?per_page={MAX_COMMENTS}"))
        if not isinstance(issue, dict):
            raise ReaderError("the API's answer was not an issue")
        kind = "Pull request" if pull or issue.get("pull_request") else "Issue"
        title = f"{kind} #{number}: {issue.get('title') or ''}".strip()
        lines = [f"# {title}", "",
                 f"{owner}/{repo} · state: {issue.get('state', '?')} · by @{_login(issue)} · {issue.get('created_at', '')}",
                 "", clip(str(issue.get("body") or ""), MAX_COMMENT_CHARS * 4) or "(no description)"]
        if isinstance(comments, list) and comments:
            lines += ["", "## Comments"]
            for comment in comments[:MAX_COMMENTS]:
                if isinstance(comment, dict):
                    lines += ["", f"@{_login(comment)} ({comment.get('created_at', '')}):",
                              clip(str(comment.get("body") or ""), MAX_COMMENT_CHARS)]
        return Document(url=url, title=f"{owner}/{repo} {title}", text="\n".join(lines))


# First path segments of github.com that are not a user or organisation.
_NOT_OWNERS = frozenset({"orgs", "settings", "marketplace", "topics", "search", "explore", "features",
                         "notifications", "login", "about", "pricing", "sponsors", "collections", "trending"})


def _login(item: dict[str, Any]) -> str:
    user = item.get("user")
    return str(user.get("login")) if isinstance(user, dict) and user.get("login") else "?"

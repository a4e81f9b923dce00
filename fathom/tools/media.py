"""What kind of document a response holds, decided from its Content-Type, URL and first bytes.

Routing happens on the parsed media type, never on substrings of the URL (upstream bug T13), so
``/pdf-guide.html`` is HTML and an ``image/png`` is refused before its body is downloaded.
"""

from __future__ import annotations

import enum
from pathlib import PurePosixPath
from urllib.parse import urlsplit


class MediaKind(str, enum.Enum):
    HTML = "html"
    TEXT = "text"  # plain text, markdown, CSV, XML, source code: shown as is
    JSON = "json"
    PDF = "pdf"
    OFFICE = "office"  # .docx, .xlsx, .pptx, .epub: read by fathom.tools.office
    BINARY = "binary"  # images, audio, archives, legacy office files...: cannot be read


_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/xml",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/x-sh",
        "application/x-tex",
        "application/x-latex",
        "application/sql",
        "application/rtf",
        "application/x-ndjson",
    }
)
_OFFICE_TYPES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/epub+zip",
    }
)
_EXTENSIONS: dict[str, MediaKind] = {
    **dict.fromkeys([".html", ".htm", ".xhtml", ".php", ".asp", ".aspx", ".jsp"], MediaKind.HTML),
    **dict.fromkeys([".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".xml", ".yaml", ".yml"], MediaKind.TEXT),
    ".json": MediaKind.JSON,
    ".pdf": MediaKind.PDF,
    **dict.fromkeys([".docx", ".xlsx", ".pptx", ".epub"], MediaKind.OFFICE),
    **dict.fromkeys(
        [
            ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".ico", ".tif", ".tiff", ".avif",
            ".heic", ".mp3", ".wav", ".ogg", ".flac", ".m4a", ".mp4", ".mkv", ".webm", ".avi",
            ".mov", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".exe", ".dmg",
            ".iso", ".bin", ".woff", ".woff2", ".ttf", ".otf", ".doc", ".xls",
            ".ppt", ".odt", ".ods", ".apk", ".deb", ".rpm", ".whl",
        ],
        MediaKind.BINARY,
    ),
}


def media_type(content_type: str | None) -> str:
    """``"text/html; charset=UTF-8"`` -> ``"text/html"`` (lower case; ``""`` if missing)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def header_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, if any."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'").lower()
    return None


def classify(content_type: str | None, url: str = "") -> MediaKind | None:
    """The kind of a response from its headers (and URL extension when they are generic).

    ``None`` means "undecided": the first bytes must be sniffed (see :func:`sniff`).
    """
    mt = media_type(content_type)
    if mt in ("text/html", "application/xhtml+xml"):
        return MediaKind.HTML
    if mt == "application/pdf" or mt == "application/x-pdf":
        return MediaKind.PDF
    if mt in _OFFICE_TYPES:
        return MediaKind.OFFICE
    if mt in ("application/json", "text/json") or mt.endswith("+json"):
        return MediaKind.JSON
    if mt.startswith("text/") or mt in _TEXT_APPLICATION_TYPES or mt.endswith("+xml"):
        return MediaKind.TEXT
    if mt.startswith(("image/", "audio/", "video/", "font/", "model/")):
        return MediaKind.BINARY
    by_extension = _EXTENSIONS.get(PurePosixPath(urlsplit(url).path).suffix.lower())
    if mt in ("", "application/octet-stream", "binary/octet-stream", "application/download", "application/zip"):
        if by_extension is not None:
            return by_extension
        return None if mt == "" else MediaKind.BINARY
    if mt.startswith("application/"):
        return MediaKind.BINARY
    return by_extension


def sniff(head: bytes) -> MediaKind:
    """Decide from the first bytes of a body whose headers said nothing useful."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text holds NUL bytes by nature
        return MediaKind.TEXT
    start = head[:1024].lstrip().lower()
    if start.startswith(b"%pdf-"):
        return MediaKind.PDF
    if start.startswith((b"<!doctype html", b"<html")) or b"<body" in start or b"<head" in start:
        return MediaKind.HTML
    if start[:1] in (b"{", b"["):
        return MediaKind.JSON
    if b"\x00" in head[:4096]:
        return MediaKind.BINARY
    return MediaKind.TEXT

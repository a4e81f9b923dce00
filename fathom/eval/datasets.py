"""Evaluation sets: JSONL files of ``{"id", "question", "answer"}`` rows, read whole or not at all.

A spec is a path to a ``.jsonl`` file, or the name of a set installed by ``fathom datasets fetch``
(:data:`fathom.app.upstream.DATASETS`; case-insensitive, so ``GPQA-Diamond`` works). Unlike the
upstream harness, an id is never invented: a row without one is an error, as is a repeated id.
Integer ids and answers (``aime25``, ``GPQA-Diamond``) become strings. Every other key of a row is
kept in :attr:`Item.extra`. Every error is a one-line :class:`~fathom.errors.ConfigError` naming
the file and line.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fathom.app import upstream
from fathom.errors import ConfigError, one_line

__all__ = ["Dataset", "Item", "load_dataset", "parse_dataset", "resolve_dataset", "select"]

CORE_KEYS = ("id", "question", "answer")


@dataclass(frozen=True)
class Item:
    """One question: its id, text, gold answer, and the row's other keys."""

    id: str
    question: str
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """A loaded evaluation set: its name (the installed name, or the file's stem), file and items."""

    name: str
    path: Path
    items: list[Item]

    def __len__(self) -> int:
        return len(self.items)


def resolve_dataset(spec: str) -> tuple[str, Path]:
    """The name and file of ``spec``: an installed set's name, else a file's path.

    Raises:
        ConfigError: an unknown name, or a known set that is not installed.
    """
    text = spec.strip()
    if not text:
        raise ConfigError("no data set given: name an installed set or a .jsonl file")
    name = text.lower()
    if name not in upstream.DATASETS:
        path = Path(text).expanduser()
        if path.is_file():
            return path.stem, path
        if text.endswith(".jsonl") or "/" in text or "\\" in text:
            raise ConfigError(f"data set file {text} does not exist")
        raise ConfigError(
            f"unknown data set {text!r}: give a .jsonl file or one of {', '.join(upstream.DATASETS)}"
        )
    path = upstream.dataset_file(name)
    if not path.is_file():
        raise ConfigError(f"data set {name} is not installed: run `fathom datasets fetch {name}`")
    return name, path


def load_dataset(spec: str) -> Dataset:
    """Read the set ``spec`` names (see :func:`resolve_dataset`); nothing is half-loaded.

    Raises:
        ConfigError: the set cannot be found or read, or a row is bad (the message names its line).
    """
    name, path = resolve_dataset(spec)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"data set {path} cannot be read: {one_line(exc.strerror or exc)}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"data set {path} is not UTF-8 text (byte {exc.start})") from None
    return Dataset(name, path, parse_dataset(text, str(path)))


def parse_dataset(text: str, where: str) -> list[Item]:
    """The items of JSONL ``text``; ``where`` names the source in errors.

    Raises:
        ConfigError: the first bad line (not JSON, not an object, no id, no question or answer, or
            an id used before: then both lines are named), or no rows at all.
    """
    items: list[Item] = []
    first_line: dict[str, int] = {}
    # split on "\n" only: str.splitlines would also cut at U+2028 and friends inside strings
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        at = f"data set {where}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{at}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{at}: not a JSON object")
        item_id = _id(row.get("id"), at)
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"{at}: no question (a non-empty string is needed)")
        answer = _answer(row.get("answer"), at)
        if item_id in first_line:
            raise ConfigError(f"{at}: id {item_id!r} is already used on line {first_line[item_id]}")
        first_line[item_id] = number
        extra = {k: v for k, v in row.items() if k not in CORE_KEYS}
        items.append(Item(item_id, question, answer, extra))
    if not items:
        raise ConfigError(f"data set {where} has no rows")
    return items


def _id(value: Any, at: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        if value is None:
            raise ConfigError(f"{at}: no id (every row needs one)")
        raise ConfigError(f"{at}: the id must be a string or an integer, not {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{at}: empty id (every row needs one)")
    return text


def _answer(value: Any, at: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        if value is None:
            raise ConfigError(f"{at}: no answer")
        raise ConfigError(f"{at}: the answer must be a string or a number, not {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{at}: empty answer")
    return text


def select(
    items: Sequence[Item],
    *,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    ids: Iterable[str] | None = None,
) -> list[Item]:
    """The items to run, in the set's order: those of ``ids`` (all when ``None``), then a
    ``sample`` of that many drawn with ``seed`` (the same seed always draws the same items), then
    the first ``limit``.

    Raises:
        ConfigError: an id not in the set, or a negative limit or sample.
    """
    for what, value in (("limit", limit), ("sample", sample)):
        if value is not None and value < 0:
            raise ConfigError(f"--{what} must be 0 or more, not {value}")
    chosen = list(items)
    if ids is not None:
        wanted = [str(i) for i in ids]
        known = {item.id for item in chosen}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise ConfigError(f"ids not in the data set: {shown}")
        keep = set(wanted)
        chosen = [item for item in chosen if item.id in keep]
    if sample is not None and sample < len(chosen):
        picked = sorted(random.Random(seed).sample(range(len(chosen)), sample))
        chosen = [chosen[i] for i in picked]
    if limit is not None:
        chosen = chosen[:limit]
    return chosen

"""One exception root for everything Fathom raises on purpose.

Catch :class:`FathomError` to handle any of them; the message of each is one line written for
the person running Fathom. Anything else that escapes is a bug (the CLI logs its traceback).
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 400


def one_line(text: object, limit: int | None = MAX_MESSAGE_CHARS) -> str:
    """``text`` with its whitespace collapsed to single spaces, cut to ``limit`` characters
    (an ellipsis marks the cut; ``None``: no cut), so it fits on one log or terminal line."""
    flat = " ".join(str(text).split())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1] + "…"


class FathomError(Exception):
    """The root of Fathom's errors."""


class ConfigError(FathomError, ValueError):
    """A setting, flag, file or option cannot be used; the message names it and says why."""


class ModelError(FathomError, RuntimeError):
    """A model server failed in a way the caller should report."""


class ToolError(FathomError, RuntimeError):
    """A research tool failed; the message is written for the model to read (and the user to see)."""


class StoreError(FathomError, RuntimeError):
    """The run database cannot be used: unreachable, not a Fathom database, too new, or a
    statement failed. The message names the database (password hidden) and says why."""


class RunStoppedByStoreError(StoreError):
    """A recorded run stopped because its database failed; its checkpoints hold every step that
    finished, so ``fathom resume RUN_ID`` continues it once the database works again."""

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunExistsError(StoreError):
    """A run is already recorded under the id given to create one."""


class RunError(FathomError):
    """A run cannot be started, found or continued as asked."""


class UnknownRunError(RunError, KeyError):
    """No run is recorded under the id given."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0]) if self.args else ""

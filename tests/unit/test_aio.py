"""Fathom's own event loop: uvloop's where installed, marked as Fathom's, and a host's loop left alone."""

from __future__ import annotations

import asyncio
import sys

import pytest

from fathom.aio import loop_is_own, run_own_loop


async def _own_in_a_task() -> bool:
    await asyncio.sleep(0)
    return loop_is_own()


async def _loop_facts() -> tuple[str, bool, bool]:
    loop = asyncio.get_running_loop()
    child = await asyncio.create_task(_own_in_a_task())  # tasks inherit the mark
    return type(loop).__module__, loop_is_own(), child


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")
def test_fathoms_commands_run_on_uvloop_and_know_it() -> None:
    pytest.importorskip("uvloop", reason="uvloop is a declared dependency on this platform")
    module, own, child_own = run_own_loop(_loop_facts())
    assert module.startswith("uvloop")
    assert own and child_own
    assert not loop_is_own()  # the mark ends with the loop


def test_a_hosts_loop_is_not_fathoms() -> None:
    module, own, _ = asyncio.run(_loop_facts())
    assert module.startswith("asyncio")
    assert not own


def test_what_the_main_coroutine_raises_reaches_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        run_own_loop(fails())
    assert not loop_is_own()

"""Heavy imports run with the garbage collector paused, and leave it as they found it."""

from __future__ import annotations

import gc

import pytest

from fathom.startup import collector_paused


def test_the_collector_is_paused_for_the_block_and_restored_after_it() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("an import failed")
    assert gc.isenabled()


def test_a_collector_the_caller_paused_stays_paused() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()



def test_freeze_keeps_what_the_block_created_out_of_later_collections() -> None:
    gc.unfreeze()  # whatever an earlier test froze
    try:
        with collector_paused():
            kept = [[] for _ in range(1000)]
        assert gc.get_freeze_count() == 0  # a host's process: its collector left as it was
        with collector_paused(freeze=True):
            kept = [[] for _ in range(1000)]
        assert gc.get_freeze_count() >= len(kept)
        assert gc.isenabled()
    finally:
        gc.unfreeze()

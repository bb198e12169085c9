"""Combining upstream markers: which sources hold a shard back, and when idle ones count."""

from __future__ import annotations

from aupwatch.detectors.engine import NEVER
from aupwatch.detectors.watermarks import UpstreamWatermarks

LATE = 30


def inputs(*marks: tuple[str, int | None, bool, int | None]) -> UpstreamWatermarks:
    up = UpstreamWatermarks([m[0] for m in marks], LATE, skip_idle=True)
    for mark in marks:
        up.update(*mark)
    return up


def test_nothing_is_decided_before_every_source_has_spoken() -> None:
    up = UpstreamWatermarks(["i0", "i1"], LATE, skip_idle=True)
    up.update("i0", 100, False)
    assert up.combined() == (NEVER, False)
    assert up.lagging() == ["i1"]


def test_an_idle_input_is_passed_over_while_nothing_waits_in_it() -> None:
    up = inputs(("i0", 100, False, None), ("i1", 500, True, 7))
    assert up.combined() == (100, False)
    assert up.idle_ends() == {"i1": 7}


def test_an_idle_input_with_records_waiting_counts_with_its_promise() -> None:
    # the other worker still calls it idle, but a fresh end offset shows records behind 7
    up = inputs(("i0", 100, False, None), ("i1", 40, True, 7))
    assert up.combined(waiting=frozenset({"i1"})) == (40, False)


def test_an_idle_input_that_never_read_a_record_holds_everything_when_it_wakes() -> None:
    up = inputs(("i0", 100, False, None), ("i1", None, True, 0))
    assert up.combined(waiting=frozenset({"i1"})) == (NEVER, False)


def test_all_idle_inputs_flush_to_their_largest_time() -> None:
    up = inputs(("i0", 100, True, 3), ("i1", 40, True, 7))
    assert up.combined() == (100 + LATE, True)


def test_internal_sources_count_even_when_idle_unless_all_are() -> None:
    up = UpstreamWatermarks(["d0", "d1"])
    up.update("d0", 200, False)
    up.update("d1", 130, True)  # flushed earlier; a peer that has not caught up holds us
    assert up.combined() == (130, False)
    assert up.lagging() == ["d1"]
    up.update("d0", 200, True)
    assert up.combined() == (200, True)


def test_watermarks_never_move_back() -> None:
    up = UpstreamWatermarks(["d0"])
    up.update("d0", 200, False)
    up.update("d0", 100, False)
    assert up.combined() == (200, False)

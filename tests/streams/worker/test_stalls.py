"""Stalls: a worker that stands still says why, reads lost changelogs again, asks to rebalance."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from aupwatch.streams.worker import stalls
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.stalls import (
    REJOIN_AFTER,
    STALL_AFTER,
    TICK_LATE,
    Stalls,
)


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    said = [r.getMessage() for r in caplog.records if "rebalancing or recovering" in r.message]
    caplog.clear()
    return said


def test_a_long_rebalance_or_recovery_is_said_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    stalls = Stalls(InputPartitions(30_000_000), {}, None)
    stalls.unsettled(100.0, settled=False)
    stalls.unsettled(100.0 + STALL_AFTER - 1, settled=False)
    assert _said(caplog) == []  # not long yet
    stalls.unsettled(100.0 + STALL_AFTER, settled=False)
    assert _said(caplog) == ["Faust has been rebalancing or recovering its tables for 60 s: "
                             "no stage decides until it is done"]  # fmt: skip
    stalls.unsettled(100.0 + STALL_AFTER + 30, settled=False)
    assert _said(caplog) == []  # once a minute
    stalls.unsettled(100.0 + 2 * STALL_AFTER, settled=False)
    assert len(_said(caplog)) == 1
    stalls.unsettled(300.0, settled=True)
    stalls.unsettled(301.0, settled=False)
    stalls.unsettled(301.0 + STALL_AFTER - 1, settled=False)
    assert _said(caplog) == []  # the clock restarted when Faust settled


def test_a_long_rebalance_describes_the_apps_tasks_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.new_event_loop()
    try:
        app = SimpleNamespace(loop=loop, consumer=SimpleNamespace())
        stalls = Stalls(InputPartitions(30_000_000), {}, None, app)

        def count() -> int:
            said = sum("loop's tasks wait at" in r.getMessage() for r in caplog.records)
            caplog.clear()
            return said

        stalls.unsettled(100.0, settled=False)
        stalls.unsettled(100.0 + STALL_AFTER, settled=False)
        assert count() == 1  # the main loop (the app has no consumer thread here)
        stalls.unsettled(100.0 + 2 * STALL_AFTER, settled=False)
        assert count() == 0  # once a rebalance
        stalls.unsettled(300.0, settled=True)
        stalls.unsettled(301.0, settled=False)
        stalls.unsettled(301.0 + STALL_AFTER, settled=False)
        assert count() == 1  # the next long one is described again
    finally:
        loop.close()


def test_a_tick_held_for_a_minute_is_said_once_a_minute_and_described_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.new_event_loop()
    try:
        app = SimpleNamespace(loop=loop, consumer=SimpleNamespace())
        stalls = Stalls(InputPartitions(30_000_000), {}, None, app)

        def said() -> list[str]:
            lines = [r.getMessage().split(":")[0] for r in caplog.records]
            caplog.clear()
            return lines

        stalls.stuck(1000.0)
        assert said() == []  # no tick finished yet: start-up is the rebalance watch's
        stalls.ticked(1000.0)
        for t in range(1001, 1000 + int(TICK_LATE + STALL_AFTER)):
            stalls.stuck(float(t))
        assert said() == []  # held, not for a minute yet
        stalls.stuck(1000.0 + TICK_LATE + STALL_AFTER)
        held = "the worker's once-a-second tick has not finished for 65 s"
        # the fake app has no consumer whose partitions it could describe
        assert said() == [held, "main loop's tasks wait at", "cannot say more"]
        stalls.stuck(1000.0 + TICK_LATE + 1.5 * STALL_AFTER)
        assert said() == []  # once a minute
        stalls.stuck(1000.0 + TICK_LATE + 2 * STALL_AFTER)
        assert said() == [held.replace("65", "125")]  # described once
        stalls.ticked(1200.0)
        stalls.stuck(1201.0)
        stalls.stuck(1200.0 + TICK_LATE)
        stalls.stuck(1200.0 + TICK_LATE + STALL_AFTER)
        assert len(said()) == 3  # held again after it finished: said and described anew
    finally:
        loop.close()


def test_a_rebalance_with_no_partition_moving_for_long_asks_for_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    stalls = Stalls(InputPartitions(30_000_000), {}, None)
    still = {("t", 0): 5, ("t", 1): None}
    assert not stalls.unmoving(0.0, still)
    assert not any(stalls.unmoving(float(t), still) for t in range(1, int(REJOIN_AFTER)))
    assert stalls.unmoving(REJOIN_AFTER, still)  # nothing moved for two minutes
    assert "no assigned partition has moved for 120 s" in caplog.text
    assert not stalls.unmoving(REJOIN_AFTER + 1, still)  # once, then a new rebalance's time
    assert stalls.unmoving(2 * REJOIN_AFTER, still)
    moving = {("t", 0): 6, ("t", 1): None}
    assert not stalls.unmoving(2 * REJOIN_AFTER + 1, moving)  # a recovery that reads
    assert not stalls.unmoving(3 * REJOIN_AFTER, moving)
    assert not stalls.unmoving(3 * REJOIN_AFTER + 1, None)  # settled: it starts again
    assert not stalls.unmoving(3 * REJOIN_AFTER + 2, moving)
    assert not stalls.unmoving(4 * REJOIN_AFTER + 1, moving)
    assert stalls.unmoving(4 * REJOIN_AFTER + 2, moving)


def test_a_stuck_recovery_reads_lost_changelogs_again_once_then_asks_for_a_rebalance(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    clock, calm = [1000.0], [False]
    tp = TP("c", 2)
    reread: list[dict[Any, int]] = []
    rejoined: list[float] = []

    async def read_again(app: Any, offsets: dict[Any, int]) -> None:
        reread.append(offsets)

    monkeypatch.setattr(stalls, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(stalls, "settled", lambda app: calm[0])
    monkeypatch.setattr(stalls, "lost_changelogs", lambda app, moved, now, quiet: {tp: 4})
    monkeypatch.setattr(stalls, "read_again", read_again)
    monkeypatch.setattr(stalls, "positions", lambda app: {tp: 10})
    monkeypatch.setattr(stalls, "rejoin", lambda app: rejoined.append(clock[0]))
    monkeypatch.setattr(stalls, "event_loops", dict)  # no loops to describe here
    watch = Stalls(InputPartitions(30_000_000), {}, None, SimpleNamespace()).watch

    def run_until(end: float) -> None:
        while clock[0] < end:
            asyncio.run(watch())
            clock[0] += 1.0

    run_until(1000.0 + REJOIN_AFTER + 5)
    assert reread == [{tp: 4}]  # once: it did not help
    assert rejoined == [1001.0 + REJOIN_AFTER]  # positions still for two minutes after
    assert "reading them again: c[2] from 4" in caplog.text
    calm[0] = True
    run_until(clock[0] + 2)
    calm[0] = False
    run_until(clock[0] + 2)
    assert reread == [{tp: 4}, {tp: 4}]  # a new rebalance may read it again

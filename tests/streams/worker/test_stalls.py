"""Stalls: a worker stuck rebalancing or recovering says so once a minute."""

from __future__ import annotations

import logging

import pytest

from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.stalls import STALL_AFTER, Stalls


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

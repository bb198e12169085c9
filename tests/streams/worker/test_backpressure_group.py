"""Backpressure against the real broker: pausing input partitions never changes the alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.streams.harness import (
    Deployment,
    deployment,
    describe_difference,
    wait_for_alerts,
    wait_for_progress,
)

pytestmark = pytest.mark.integration


def start(dep: Deployment, name: str, limit: int) -> None:
    """A worker logging at INFO (pause and resume lines) with ``max_undecided = limit``."""
    dep.start_worker(name, log_level="INFO", AUPWATCH_WORKER__MAX_UNDECIDED=str(limit))


def test_a_small_limit_pauses_and_resumes_and_matches_replay(
    kafka_bootstrap: str, tmp_path: Path, dataset: Any
) -> None:
    """A backlog, one worker with a tiny budget, a second joining mid-stream."""
    logs, expected, _ = dataset
    with deployment(kafka_bootstrap, tmp_path) as dep:
        dep.create_input()
        dep.send(logs, batch=10)
        start(dep, "w1", limit=300)
        wait_for_progress(dep)
        start(dep, "w2", limit=300)  # a rebalance while partitions are paused
        got = wait_for_alerts(dep, expected, timeout=300)
        assert got == expected, describe_difference(expected, got) + dep.logs()
        text = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
        assert " paused: " in text and " resumed: " in text, dep.logs()

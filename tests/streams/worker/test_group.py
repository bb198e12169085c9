"""A consumer group that is idle when a replay arrives, and how fast it stops on SIGTERM."""

from __future__ import annotations

import hashlib
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_broker import create_topic
from tests.streams.harness import (
    deployment,
    describe_difference,
    read_topic,
    replay_alerts,
    wait_for_alerts,
    wait_for_progress,
)

pytestmark = pytest.mark.integration

GROUP_START = Path(__file__).parent / "data" / "group-start.jsonl.gz"


@pytest.mark.parametrize("batch", [1, 100])
def test_idle_group_then_replay_matches_replay(
    kafka_bootstrap: str, tmp_path: Path, batch: int
) -> None:
    """Disclosure and grant-timing cases at the very start, after 10 s of idleness."""
    expected = replay_alerts(GROUP_START)
    with deployment(kafka_bootstrap, tmp_path) as dep:
        dep.create_input()
        dep.start_worker("w1")
        time.sleep(3)
        dep.start_worker("w2")
        time.sleep(10)  # both joined, every partition idle (idle_timeout is 2 s here)
        dep.send(GROUP_START, batch=batch)
        got = wait_for_alerts(dep, expected, timeout=180)
        assert got == expected, describe_difference(expected, got) + dep.logs()


def test_sigterm_mid_stream_stops_within_30_s_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path, dataset: Any
) -> None:
    logs, expected, _ = dataset
    with deployment(kafka_bootstrap, tmp_path) as dep:
        dep.create_input()
        dep.send(logs, batch=1)
        worker = dep.start_worker("w1")
        wait_for_progress(dep)
        start = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=40)
        stopped = time.monotonic() - start
        assert stopped < 30, f"stopped after {stopped:.1f} s (exit {code})\n{dep.logs()}"
        dep.start_worker("w1-again")
        got = wait_for_alerts(dep, expected)
        assert got == expected, describe_difference(expected, got) + dep.logs()


def test_a_dead_letter_too_large_for_its_topic_keeps_a_prefix_and_a_digest(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    big = b'{"kind":"api_call","pad":"' + b"x" * 2_000_000 + b'"}'
    logs = tmp_path / "big.jsonl"
    grant = b'{"event_id":"g1","kind":"authorization","ts":"2026-03-01T00:00:00Z",'
    grant += b'"app_id":"a","seller_id":"s","action":"grant"}'
    logs.write_bytes(big + b"\n" + grant + b"\n")
    with deployment(kafka_bootstrap, tmp_path) as dep:
        create_topic(kafka_bootstrap, dep.input_topic, 4, {"max.message.bytes": "4000000"})
        dep.start_worker("w1")
        dep.send(logs, batch=1)
        deadline = time.monotonic() + 120
        while not (messages := read_topic(kafka_bootstrap, dep.dead_topic)):
            assert time.monotonic() < deadline, dep.logs()
            time.sleep(1)
        (letter,) = messages
        headers = dict(letter.headers)
        assert headers["aupwatch.reason"] == b"too_large"
        assert headers["aupwatch.truncated"] == b"true"
        assert int(headers["aupwatch.length"]) == len(big)
        assert headers["aupwatch.sha256"].decode() == hashlib.sha256(big).hexdigest()
        assert letter.value == big[: len(letter.value)] and len(letter.value) == 1_000_000

"""The Kafka worker against the real broker: same alerts as offline replay, whatever happens."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.streams.harness import (
    AUPWATCH,
    deployment,
    describe_difference,
    kill_mid_stream,
    latest_alerts,
    read_topic,
    send_in_transactions,
    wait_for_alerts,
)

pytestmark = pytest.mark.integration


def test_worker_matches_replay(kafka_bootstrap: str, tmp_path: Path, dataset: Any) -> None:
    logs, expected, _ = dataset
    with deployment(kafka_bootstrap, tmp_path) as dep:
        dep.create_input()
        dep.start_worker("w1")
        dep.send(logs, batch=100)
        got = wait_for_alerts(dep, expected)
        assert got == expected, describe_difference(expected, got) + dep.logs()


def test_two_workers_match_one(kafka_bootstrap: str, tmp_path: Path, dataset: Any) -> None:
    logs, expected, _ = dataset
    with deployment(kafka_bootstrap, tmp_path, partitions=4, input_partitions=4) as dep:
        dep.create_input()
        dep.start_worker("w1")
        dep.start_worker("w2")
        time.sleep(8)  # let both join before data arrives, so the work is really split
        dep.send(logs, batch=1)
        got = wait_for_alerts(dep, expected, timeout=300)
        assert got == expected, describe_difference(expected, got) + dep.logs()
        assert all(p.poll() is None for p in dep.procs), dep.logs()


@pytest.mark.parametrize("delay", [0.0, 4.0])
def test_sigkill_mid_stream_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path, dataset: Any, delay: float
) -> None:
    logs, expected, _ = dataset
    with deployment(kafka_bootstrap, tmp_path) as dep:
        dep.create_input()
        dep.send(logs, batch=1)
        worker = dep.start_worker("w1")
        # 0: before any state is written; 4: with state and commits behind it
        progress = kill_mid_stream(dep, worker, delay)
        # mid-stream: input or detection work was still uncommitted when it died
        assert any(0 <= done < total for done, total in progress.values()), progress
        # and its alerts were not all out (a count of alert versions depends on speed)
        assert latest_alerts(dep.bootstrap, dep.alerts_topic) != expected, progress
        dep.start_worker("w1-restarted")
        got = wait_for_alerts(dep, expected)
        assert got == expected, describe_difference(expected, got) + dep.logs()


def test_transactional_input_still_goes_idle(
    kafka_bootstrap: str, tmp_path: Path, dataset: Any
) -> None:
    # each partition ends in a transaction marker: the tail alert needs the idle flush
    logs, expected, _ = dataset
    with deployment(kafka_bootstrap, tmp_path) as dep:
        dep.create_input()
        dep.start_worker("w1")
        send_in_transactions(kafka_bootstrap, dep.input_topic, logs, dep.input_partitions)
        got = wait_for_alerts(dep, expected)
        assert got == expected, describe_difference(expected, got) + dep.logs()


def test_dead_letters_with_reason_and_source(
    kafka_bootstrap: str, tmp_path: Path, dataset: Any
) -> None:
    logs, expected, dead_file = dataset
    want = Counter(orjson.loads(line)["reason"] for line in dead_file.read_bytes().splitlines())
    assert sum(want.values()) > 10
    with deployment(kafka_bootstrap, tmp_path) as dep:
        dep.create_input()
        dep.start_worker("w1")
        dep.send(logs, batch=50)
        got_alerts = wait_for_alerts(dep, expected)
        assert got_alerts == expected, describe_difference(expected, got_alerts)
        messages = read_topic(kafka_bootstrap, dep.dead_topic)
        got = Counter(dict(m.headers)["aupwatch.reason"].decode() for m in messages)
        assert got == want
        raw_lines = set(logs.read_bytes().split(b"\n"))
        for m in messages:
            headers = dict(m.headers)
            assert headers["aupwatch.source.topic"].decode() == dep.input_topic
            assert int(headers["aupwatch.source.partition"]) in range(dep.input_partitions)
            assert int(headers["aupwatch.source.offset"]) >= 0
            assert headers["aupwatch.error"]
            assert m.value in raw_lines  # the record is kept byte for byte


def test_a_text_holding_the_key_separator_is_a_dead_letter_and_the_worker_goes_on(
    kafka_bootstrap: str, tmp_path: Path, dataset: Any
) -> None:
    # U+001F joins the texts of state keys: such a seller id once stopped every worker
    logs, expected, _ = dataset
    first = orjson.loads(next(x for x in logs.read_bytes().splitlines() if b'"api_call"' in x))
    poison = orjson.dumps({**first, "event_id": "poison-1", "seller_id": "S\x1fX"})
    assert b"\\u001f" in poison
    poisoned = tmp_path / "poisoned.jsonl"
    poisoned.write_bytes(poison + b"\n" + logs.read_bytes())
    with deployment(kafka_bootstrap, tmp_path) as dep:
        dep.create_input()
        dep.start_worker("w1")
        dep.send(poisoned, batch=100)
        got = wait_for_alerts(dep, expected)
        assert got == expected, describe_difference(expected, got) + dep.logs()
        letters = [m for m in read_topic(kafka_bootstrap, dep.dead_topic) if m.value == poison]
        assert len(letters) == 1, dep.logs()
        headers = dict(letters[0].headers)
        assert headers["aupwatch.reason"] == b"bad_value"
        assert b"seller_id" in headers["aupwatch.error"] and b"U+001F" in headers["aupwatch.error"]


def test_worker_help_and_sigterm(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [*AUPWATCH, "worker", "--help"], capture_output=True, text=True, check=True
    )
    assert "SASL" in out.stdout and "--bootstrap-servers" in out.stdout
    with deployment(kafka_bootstrap, tmp_path) as dep:
        proc = dep.start_worker("w1")
        time.sleep(6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, dep.logs()


@pytest.mark.soak
@pytest.mark.parametrize("delay", [0.5, 2.0])
def test_survivor_takes_over_from_killed_worker(
    kafka_bootstrap: str, tmp_path: Path, dataset: Any, delay: float
) -> None:
    """One of two workers dies, often while the group is still rebalancing: same alerts."""
    logs, expected, _ = dataset
    with deployment(kafka_bootstrap, tmp_path, partitions=4, input_partitions=4) as dep:
        dep.create_input()
        dep.send(logs, batch=1)
        fast = {"AUPWATCH_WORKER__SESSION_TIMEOUT": "10"}
        victim = dep.start_worker("victim", **fast)
        dep.start_worker("survivor", **fast)
        progress = kill_mid_stream(dep, victim, delay)
        assert any(0 <= done < total for done, total in progress.values()), progress
        got = wait_for_alerts(dep, expected, timeout=240)
        assert got == expected, describe_difference(expected, got) + dep.logs()

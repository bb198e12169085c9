"""Operator mistakes end in one line on stderr and exit 2, within 30 s, with no client noise.

Every command runs as a subprocess, as an operator would run it. "No broker" is a local
port where nothing listens, so none of these needs Kafka.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.kafka_broker import REPO_ROOT

AUPWATCH = [sys.executable, "-m", "aupwatch.cli"]
BOUND = 30.0  # seconds an operator waits, at most, for the error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(tmp: Path) -> dict[str, str]:
    """The environment without AUPWATCH_* overrides; worker state under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUPWATCH_")}
    env["AUPWATCH_WORKER__DATA_DIR"] = str(tmp / "worker")
    return env


def run(tmp: Path, *args: str) -> tuple[int, list[str], float]:
    """Runs ``aupwatch ARGS``: (exit code, stderr lines, seconds taken)."""
    start = time.monotonic()
    proc = subprocess.run(
        [*AUPWATCH, *args],
        env=clean_env(tmp),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=BOUND * 2,
    )
    return proc.returncode, proc.stderr.decode().splitlines(), time.monotonic() - start


def assert_one_line_error(result: tuple[int, list[str], float], text: str) -> None:
    code, err, took = result
    assert code == 2, err
    assert len(err) == 1, err
    assert err[0].startswith("aupwatch: error: ") and text in err[0], err
    assert took < BOUND


@pytest.fixture
def no_broker() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on, on every address (as metrics_addr 0.0.0.0 binds)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_worker_without_a_broker(tmp_path: Path, no_broker: str) -> None:
    result = run(tmp_path, "worker", "--bootstrap-servers", no_broker)
    assert_one_line_error(result, f"cannot reach Kafka at {no_broker} (connection refused)")


def test_replay_to_kafka_without_a_broker(tmp_path: Path, no_broker: str) -> None:
    result = run(tmp_path, "replay", "--to-kafka", "--bootstrap-servers", no_broker, "/dev/null")
    assert_one_line_error(result, f"cannot reach Kafka at {no_broker}")


def test_alerts_without_a_broker(tmp_path: Path, no_broker: str) -> None:
    result = run(tmp_path, "alerts", "--bootstrap-servers", no_broker)
    assert_one_line_error(result, f"cannot reach Kafka at {no_broker}")


def test_every_unreachable_server_is_named(tmp_path: Path, no_broker: str) -> None:
    servers = f"{no_broker},nowhere.invalid:9092"
    result = run(tmp_path, "alerts", "--bootstrap-servers", servers)
    assert_one_line_error(result, "nowhere.invalid:9092 (unknown host)")
    assert f"{no_broker} (connection refused)" in result[1][0]


def test_worker_metrics_port_in_use(tmp_path: Path, busy_port: int, no_broker: str) -> None:
    # checked before Kafka: the port is a local mistake, whatever the cluster does
    result = run(
        tmp_path, "worker", "--metrics-port", str(busy_port), "--bootstrap-servers", no_broker
    )
    assert_one_line_error(result, f"cannot serve metrics on 0.0.0.0:{busy_port}")


def test_replay_metrics_port_in_use(tmp_path: Path, busy_port: int) -> None:
    result = run(tmp_path, "replay", "--metrics-port", str(busy_port), "/dev/null")
    assert_one_line_error(result, "address already in use; choose another port")


def test_replay_since_without_to_kafka(tmp_path: Path) -> None:
    result = run(tmp_path, "replay", "--since", "2026-03-01T00:00:00Z", "/dev/null")
    assert_one_line_error(result, "--since only apply with --to-kafka")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--metrics-port", "9464"], "--metrics-port"),
        (["--alerts", "out.jsonl", "--upserts"], "--alerts, --upserts"),
        (
            ["--dead-letters", "dead.jsonl", "--suppressed", "s.jsonl"],
            "--dead-letters, --suppressed",
        ),
    ],
)
def test_replay_offline_options_with_to_kafka(
    tmp_path: Path, no_broker: str, args: list[str], named: str
) -> None:
    argv = ["replay", "--to-kafka", "--bootstrap-servers", no_broker, *args, "/dev/null"]
    assert_one_line_error(run(tmp_path, *argv), f"{named} do not apply with --to-kafka")


def test_bootstrap_server_without_a_port(tmp_path: Path) -> None:
    result = run(tmp_path, "alerts", "--bootstrap-servers", "broker")
    assert_one_line_error(result, "bootstrap server is not HOST:PORT")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_replay_metrics_have_no_created_series_and_count_dead_letters_by_kind(
    tmp_path: Path,
) -> None:
    record = {
        "event_id": "e1",
        "kind": "api_call",
        "ts": "yesterday",
        "region": "NA",
        "developer_id": "dev-1",
        "app_id": "app-1",
        "key_id": "k-1",
        "seller_id": "S1",
        "operation": "getOrders",
        "status": 200,
        "source_ip": "203.0.113.7",
        "resource_ids": ["111-222-333"],
    }
    port = free_port()
    proc = subprocess.Popen(
        [*AUPWATCH, "replay", "-", "--metrics-port", str(port), "--quiet"],
        env=clean_env(tmp_path),
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(orjson.dumps(record) + b"\nnot json\n")
        proc.stdin.flush()
        dead = ("aupwatch_records_total", (("kind", "api_call"), ("outcome", "dead_letter")))
        unknown = ("aupwatch_records_total", (("kind", "unknown"), ("outcome", "dead_letter")))
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline and samples.get(unknown) != 1.0:
            time.sleep(0.2)
            try:
                samples = scrape(port)
            except OSError:
                continue  # not serving yet
        assert samples.get(dead) == 1.0 and samples.get(unknown) == 1.0, samples
        assert not [name for name, _ in samples if name.endswith("_created")]
    finally:
        proc.stdin.close()
        proc.wait(timeout=BOUND)
    assert proc.returncode == 0


def test_a_bad_max_undecided_is_one_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[worker]\nmax_undecided = -5\n")
    result = run(tmp_path, "replay", "--config", str(config), "/dev/null")
    assert_one_line_error(result, "worker.max_undecided must not be negative")

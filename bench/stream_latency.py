"""Latency of bench/stream.py: record append to alert append for live records."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from typing import NamedTuple

import orjson
from stream_kafka import BOOT, PY, ROOT, free_port, make_topic, scrape, worker_env


class Latency(NamedTuple):
    """Record-append to alert-append latencies, seconds, and what the link gate did.

    ``live`` is the gate's calls by outcome when the last record was sent, ``gate`` at the
    end: the last ``allowed_lateness`` of records is decided at once when the input goes
    idle, and the checkpoint that follows that step sends most of their calls unchecked.
    """

    p50: float
    p99: float
    top: float
    alerts: int
    live: dict[str, float]
    gate: dict[str, float]


def gate_counts(port: int) -> dict[str, float]:
    """The link gate's calls by outcome, from a worker's metrics endpoint."""
    prefix = "aupwatch_link_gate_calls_total{"
    return {k.split('"')[1]: v for k, v in scrape(port).items() if k.startswith(prefix)}


def latency(tmp: str, rate: int = 2000, seconds: int = 60, tail: int = 35) -> Latency:
    """Live records at `rate`/s; one in 100 is a no_grant call opening a new alert.

    Records keep coming for `tail` s (> allowed_lateness) after the `seconds` measured, so
    every measured record is decided by the watermark of later records, as in a steady
    stream, not by the idle flush at the end of input.
    """
    from kafka import KafkaConsumer, KafkaProducer

    group = f"lat-{uuid.uuid4().hex[:8]}"
    topic = f"{group}-logs"
    make_topic(topic, 4)
    make_topic(f"{group}-alerts", 4)
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "aupwatch.cli", "worker", "--log-level", "ERROR", "--metrics-port", str(port)],
        cwd=ROOT,
        env=worker_env(group, topic, f"{tmp}/{group}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # steady state: the group has been joined
        time.sleep(0.5)
        with contextlib.suppress(OSError):
            if scrape(port).get("aupwatch_worker_assigned_partitions", 0) > 0:
                break
    time.sleep(2)
    prod = KafkaProducer(bootstrap_servers=BOOT, linger_ms=5)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds + tail:
        due = start + n / rate
        if time.monotonic() < due:
            time.sleep(max(0.0, due - time.monotonic()))
        now = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        bad = n % 100 == 0
        rec = {
            "event_id": f"l{n}",
            "kind": "api_call",
            "ts": ts,
            "region": "NA",
            "developer_id": "dev-l",
            "app_id": "app-l",
            "key_id": f"k{n % 50}",
            "seller_id": f"S{n}" if bad else f"S{n % 20}",
            "operation": "getOrders",
            "status": 200,
            "source_ip": f"10.0.{n % 200}.1",
        }
        if not bad:
            rec["app_id"] = "app-granted"
            if n < 20:
                prod.send(
                    topic,
                    orjson.dumps(
                        {
                            "event_id": f"g{n}",
                            "kind": "authorization",
                            "ts": ts,
                            "app_id": "app-granted",
                            "seller_id": f"S{n}",
                            "action": "grant",
                        }
                    ),
                )
        prod.send(topic, key=rec["seller_id"].encode(), value=orjson.dumps(rec))
        n += 1
    prod.flush()
    live = gate_counts(port)
    time.sleep(5)
    appended: dict[str, int] = {}
    for m in KafkaConsumer(
        topic, bootstrap_servers=BOOT, auto_offset_reset="earliest", consumer_timeout_ms=3000
    ):
        appended[orjson.loads(m.value)["event_id"]] = m.timestamp
    lat = []
    for m in KafkaConsumer(
        f"{group}-alerts",
        bootstrap_servers=BOOT,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    ):
        alert = orjson.loads(m.value)
        if alert["count"] == 1 and alert["evidence"]["event_ids"]:
            src = alert["evidence"]["event_ids"][0]
            if src in appended and int(src[1:]) < rate * seconds:
                lat.append((m.timestamp - appended[src]) / 1000)
    gate = gate_counts(port)
    proc.terminate()
    proc.wait(timeout=60)
    lat.sort()
    if not lat:
        raise RuntimeError("no alerts came back")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return Latency(lat[len(lat) // 2], p99, lat[-1], len(lat), live, gate)

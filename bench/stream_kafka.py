"""Kafka plumbing of bench/stream.py, and its measure of the full worker pipeline.

Topics on the local broker, filling them with `aupwatch replay --to-kafka`, copying one
topic into another once a group is stable, peak RSS of a process, and `full_pipeline`: the
rate of one or more `aupwatch worker` processes, read from their metrics endpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BOOT = os.environ.get("AUPWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
PY = sys.executable


def admin():  # type: ignore[no-untyped-def]
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=BOOT)


def bench_topics() -> set[str]:
    """Topics on the broker named as this bench names its own (inputs, groups, the peer's)."""
    a = admin()
    try:
        return {
            t
            for t in a.list_topics()
            if t.startswith(("bench-", "barefaust-", "lat-")) or "quixpeer-" in t
        }
    finally:
        a.close()


def delete_topics(names: set[str]) -> None:
    """Deletes these topics: a run leaves gigabytes on the broker, which is left running."""
    if names:
        a = admin()
        try:
            a.delete_topics(sorted(names))
        finally:
            a.close()


def make_topic(name: str, partitions: int, log_append: bool = True) -> None:
    from kafka.admin import NewTopic

    cfg = {"message.timestamp.type": "LogAppendTime"} if log_append else {}
    a = admin()
    a.create_topics([NewTopic(name, partitions, 1, topic_configs=cfg)])
    a.close()


def fill(topic: str, path: Path, batch: int) -> int:
    out = subprocess.run(
        [
            PY,
            "-m",
            "aupwatch.cli",
            "replay",
            "--to-kafka",
            "--input-topic",
            topic,
            "--batch",
            str(batch),
            "--bootstrap-servers",
            BOOT,
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    )
    return int(out.stderr.split("sent ")[1].split(" ")[0])


COPY = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
boot, src, dst = sys.argv[1:4]
async def main():
    c = AIOKafkaConsumer(src, bootstrap_servers=boot, auto_offset_reset="earliest",
        enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
    p = AIOKafkaProducer(bootstrap_servers=boot, max_batch_size=1 << 20, max_request_size=8 << 20)
    await c.start()
    await p.start()
    ends = await c.end_offsets(list(c.assignment()))
    left = sum(ends.values())
    while left > 0:
        for tp, msgs in (await c.getmany(timeout_ms=1000, max_records=10000)).items():
            batch = p.create_batch()
            for m in msgs:
                if batch.append(key=m.key, value=m.value, timestamp=None) is None:
                    await p.send_batch(batch, dst, partition=tp.partition)
                    batch = p.create_batch()
                    batch.append(key=m.key, value=m.value, timestamp=None)
            await p.send_batch(batch, dst, partition=tp.partition)
            left -= len(msgs)
    await p.flush()
    await p.stop()
    await c.stop()
asyncio.run(main())
"""


def join_then_copy(group: str, members: int, source: str, topic: str) -> subprocess.Popen:
    """Waits until ``group`` is stable with ``members`` members, then copies ``source`` in."""
    a = admin()
    try:
        deadline, stable = time.monotonic() + 180, 0.0
        while time.monotonic() < deadline:
            desc = a.describe_groups([group]).get(group, {})
            ok = desc.get("group_state") == "Stable" and len(desc.get("members", [])) == members
            stable = (stable or time.monotonic()) if ok else 0.0
            if stable and time.monotonic() - stable >= 3:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"group {group} did not settle with {members} members")
    finally:
        a.close()
    return subprocess.Popen([PY, "-c", COPY, BOOT, source, topic], cwd=ROOT)


def worker_env(group: str, topic: str, tmp: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AUPWATCH_KAFKA__BOOTSTRAP_SERVERS": BOOT,
        "AUPWATCH_KAFKA__GROUP_ID": group,
        "AUPWATCH_KAFKA__INPUT_TOPIC": topic,
        "AUPWATCH_KAFKA__ALERTS_TOPIC": group + "-alerts",
        "AUPWATCH_KAFKA__DEAD_LETTER_TOPIC": group + "-dead",
        "AUPWATCH_WORKER__IDLE_TIMEOUT": "1.0",
        "AUPWATCH_WORKER__DATA_DIR": tmp,
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> dict[str, float]:
    """name{labels} -> value from a worker's metrics endpoint."""
    import urllib.request

    out = {}
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class Run(NamedTuple):
    """What ``full_pipeline`` measured.

    Attributes:
        seconds: From the first record counted to every alerts-stage watermark at the end.
        rss: The largest peak RSS of the workers, MB.
        gate: The link gate's calls by outcome, summed over the workers.
    """

    seconds: float
    rss: float
    gate: dict[str, float]


def full_pipeline(
    topic: str, workers: int, tmp: str, last_ts: float, source: str | None = None
) -> Run:
    """Runs ``workers`` workers over ``topic`` until every record is decided.

    With ``source``, ``topic`` starts empty and ``source`` is copied in once the group is
    stable.
    """
    group = f"bench-{uuid.uuid4().hex[:8]}"
    ports = [free_port() for _ in range(workers)]
    procs = [
        subprocess.Popen(
            [
                PY,
                "-m",
                "aupwatch.cli",
                "worker",
                "--log-level",
                "ERROR",
                "--metrics-port",
                str(port),
            ],
            cwd=ROOT,
            env=worker_env(group, topic, f"{tmp}/{group}-{i}"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i, port in enumerate(ports)
    ]
    first = done = 0.0
    rss = 0.0
    gate: dict[str, float] = {}
    copier = None
    try:
        copier = join_then_copy(group, workers, source, topic) if source else None
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline and not done:
            time.sleep(0.2)
            try:
                samples = [scrape(port) for port in ports]
            except OSError:
                continue
            counted = sum(
                v for m in samples for k, v in m.items() if k.startswith("aupwatch_records_total{")
            )
            if counted and not first:
                first = time.perf_counter() - 0.2
            marks = {
                k: v
                for m in samples
                for k, v in m.items()
                if k.startswith("aupwatch_watermark_timestamp_seconds{") and 'stage="alerts"' in k
            }
            if len(marks) >= 4 and min(marks.values()) >= last_ts:
                done = time.perf_counter()
                gate = {
                    k.split('"')[1]: sum(m.get(k, 0.0) for m in samples)
                    for k in samples[0]
                    if k.startswith("aupwatch_link_gate_calls_total{")
                }
        rss = max(peak_rss_mb(p.pid) for p in procs)
    finally:
        if copier is not None:
            copier.kill()
            copier.wait()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    if not done:
        raise RuntimeError("the worker did not finish in time")
    return Run(done - first, rss, gate)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

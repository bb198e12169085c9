"""Benchmark of the Kafka worker on the local broker (deploy/kafka/kafka.sh start first).

For 1 and 100 records per message, on one pre-filled topic of generated records:
  - bare aiokafka consumer that only decodes (getmany + orjson.loads per record);
  - bare Faust agent that only decodes (same tuned settings and uvloop as the worker);
  - the full worker pipeline, one worker;
  - scaling: one and two workers, and one and two bare Faust agents, each group joined
    (stable) before its records arrive, so no rebalance falls inside the measure: a
    rebalance makes the worker re-read everything not yet decided and committed;
and, at a steady 2,000 records/s of live records, p50/p99 latency from a record's append
to its alert's append (both topics use LogAppendTime), plus the worker's peak RSS.

Rates are records / (time from the first record consumed to the last one done). For the
worker, "done" means every alerts-stage watermark (from its metrics endpoint) has reached
the last record's event time: every decision is made. That includes the idle flush of the
last 30 s of event time (idle_timeout is set to 1 s here).

Usage: python bench/stream.py [--records N] [--batches 1,100] [--skip-latency] [--skip-two]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BOOT = os.environ.get("AUPWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
PY = sys.executable


def admin():  # type: ignore[no-untyped-def]
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=BOOT)


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


def bare_aiokafka(topic: str, n_records: int) -> float:
    from aiokafka import AIOKafkaConsumer

    async def run() -> float:
        c = AIOKafkaConsumer(
            topic,
            bootstrap_servers=BOOT,
            group_id=f"bare-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 << 20,
        )
        await c.start()
        seen, first = 0, 0.0
        try:
            while seen < n_records:
                batches = await c.getmany(timeout_ms=500, max_records=10000)
                for msgs in batches.values():
                    if not first:
                        first = time.perf_counter()
                    for m in msgs:
                        for line in m.value.split(b"\n"):
                            with contextlib.suppress(orjson.JSONDecodeError):
                                orjson.loads(line)
                            seen += 1
        finally:
            await c.stop()
        return seen / (time.perf_counter() - first)

    return asyncio.run(run())


BARE_FAUST = """
import sys, time, orjson, faust, uvloop
uvloop.install()
from aupwatch.streams.worker.faust_app import faust_settings
from aupwatch.streams.config import load_config
import dataclasses
topic, group, progress = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = load_config(None)
cfg = dataclasses.replace(cfg, kafka=dataclasses.replace(cfg.kafka, group_id=group,
    bootstrap_servers="%s"), worker=dataclasses.replace(cfg.worker, data_dir=progress + ".d"))
app = faust.App(group, **faust_settings(cfg))
src = app.topic(topic, key_serializer="raw", value_serializer="raw")
state = {"n": 0, "first": 0.0}
@app.agent(src)
async def decode(stream):
    async for values in stream.take(1000, within=0.2):
        if not state["first"]:
            state["first"] = time.time()
        for v in values:
            for line in v.split(b"\\n"):
                try:
                    orjson.loads(line)
                except orjson.JSONDecodeError:
                    pass
                state["n"] += 1
        with open(progress + ".tmp", "w") as f:
            f.write(f"{state['n']} {state['first']} {time.time()}")
        import os
        os.replace(progress + ".tmp", progress)
worker = faust.Worker(app, loglevel="error", quiet=True)
worker.spinner = None  # as in aupwatch worker: the spinner sets the root logger to DEBUG
worker.execute_from_commandline()
"""


def bare_faust(
    topic: str, n_records: int, tmp: str, consumers: int = 1, source: str | None = None
) -> float:
    """Records/s of ``consumers`` bare Faust agents in one group that only decode.

    With ``source``, ``topic`` starts empty and ``source`` is copied in once the group is
    stable.
    """
    group = f"barefaust-{uuid.uuid4().hex[:8]}"
    files = [Path(tmp) / f"{group}-{i}" for i in range(consumers)]
    procs = [
        subprocess.Popen(
            [PY, "-c", BARE_FAUST % BOOT, topic, group, str(f)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for f in files
    ]
    copier = None
    try:
        copier = join_then_copy(group, consumers, source, topic) if source else None
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            time.sleep(0.2)
            seen = [f.read_text().split() for f in files if f.exists()]
            if sum(int(n) for n, _, _ in seen) >= n_records:
                first = min(float(a) for _, a, _ in seen)
                last = max(float(b) for _, _, b in seen)
                return n_records / (last - first)
        raise RuntimeError("bare Faust agents did not finish in time")
    finally:
        for p in [*procs, *([copier] if copier else [])]:
            p.kill()
            p.wait()


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


def full_pipeline(
    topic: str, workers: int, tmp: str, last_ts: float, source: str | None = None
) -> tuple[float, float]:
    """Seconds from the first record counted to every alerts-stage watermark at the end.

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
    return done - first, rss


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latency(
    tmp: str, rate: int = 2000, seconds: int = 60, tail: int = 35
) -> tuple[float, float, float, int]:
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
    proc.terminate()
    proc.wait(timeout=60)
    lat.sort()
    if not lat:
        raise RuntimeError("no alerts came back")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return lat[len(lat) // 2], p99, lat[-1], len(lat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batches", default="1,100")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-two", action="store_true")
    args = ap.parse_args()
    from aupwatch.schemas.records import parse_ts
    from aupwatch.streams.generator.command import GeneratorConfig, generate, write

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.jsonl"
        gen = generate(GeneratorConfig(seed=5, records=args.records, malformed_rate=0.0))
        write(gen, path)
        last_ts = max(orjson.loads(line)["ts"] for line in gen.lines[-2000:])
        last_ts = parse_ts(last_ts) / 1e6 if isinstance(last_ts, str) else last_ts
        for batch in (int(b) for b in args.batches.split(",") if b):
            topic = f"bench-in-{batch}-{uuid.uuid4().hex[:6]}"
            make_topic(topic, 4)
            n = fill(topic, path, batch)
            a = bare_aiokafka(topic, n)
            f = bare_faust(topic, n, tmp)
            t1, rss = full_pipeline(topic, 1, tmp, last_ts)
            print(
                f"[{batch}/msg] {n:,} records | bare aiokafka {a:,.0f}/s | bare Faust {f:,.0f}/s"
                f" | worker x1 {n / t1:,.0f}/s ({n / t1 / f:.0%} of bare Faust, "
                f"{n / t1 / a:.0%} of aiokafka), peak RSS {rss:,.0f} MB",
                flush=True,
            )
            if not args.skip_two:
                rates = {}
                for k in (1, 2):
                    dst = f"{topic}-join{k}w"
                    make_topic(dst, 4)
                    t, rss_k = full_pipeline(dst, k, tmp, last_ts, source=topic)
                    rates[f"worker x{k}"] = n / t
                    dst = f"{topic}-join{k}f"
                    make_topic(dst, 4)
                    rates[f"bare Faust x{k}"] = bare_faust(dst, n, tmp, k, source=topic)
                print(
                    f"[{batch}/msg] group joined first: worker x1 {rates['worker x1']:,.0f}/s, "
                    f"x2 {rates['worker x2']:,.0f}/s = "
                    f"{rates['worker x2'] / rates['worker x1']:.2f}x (peak RSS {rss_k:,.0f} MB "
                    f"per worker) | bare Faust x1 {rates['bare Faust x1']:,.0f}/s, x2 "
                    f"{rates['bare Faust x2']:,.0f}/s = "
                    f"{rates['bare Faust x2'] / rates['bare Faust x1']:.2f}x",
                    flush=True,
                )
        if not args.skip_latency:
            p50, p99, top, k = latency(tmp)
            print(
                f"latency record append -> alert append at 2,000 records/s: p50 {p50:.2f} s, "
                f"p99 {p99:.2f} s, max {top:.2f} s over {k} alerts (allowed_lateness 30 s)",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""The references of bench/stream.py: bare decoders and `aupwatch replay`.

A bare aiokafka consumer and a bare Faust agent that only decode (getmany / an agent, then
orjson.loads per record), and `aupwatch replay` on the same file in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import orjson
from stream_kafka import BOOT, PY, ROOT, join_then_copy, peak_rss_mb


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
from aupwatch.streams.worker.faust_app import WorkerApp, set_fetch_wait
from aupwatch.streams.worker.settings import faust_settings
from aupwatch.streams.config import load_config
import dataclasses
topic, group, progress, drain = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "drain"
cfg = load_config(None)
cfg = dataclasses.replace(cfg, kafka=dataclasses.replace(cfg.kafka, group_id=group,
    bootstrap_servers="%s"), worker=dataclasses.replace(cfg.worker, data_dir=progress + ".d"))
# with the worker's drain (faust_app.drain_messages) when asked, else Faust's own
app = (WorkerApp if drain else faust.App)(group, **faust_settings(cfg))
src = app.topic(topic, key_serializer="raw", value_serializer="raw")
@app.on_partitions_assigned.connect
async def assigned(app, assigned, **_):  # as the worker does (PartitionTracker.assigned)
    await set_fetch_wait(app.consumer, cfg.worker.fetch_max_wait)
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
    topic: str,
    n_records: int,
    tmp: str,
    consumers: int = 1,
    source: str | None = None,
    drain: bool = False,
) -> tuple[float, float]:
    """Records/s of ``consumers`` bare Faust agents in one group that only decode, and the
    largest peak RSS (MB) among them.

    With ``source``, ``topic`` starts empty and ``source`` is copied in once the group is
    stable. With ``drain``, the agents hand messages on as the worker does
    (``faust_app.drain_messages``), not as Faust does.
    """
    group = f"barefaust-{uuid.uuid4().hex[:8]}"
    files = [Path(tmp) / f"{group}-{i}" for i in range(consumers)]
    procs = [
        subprocess.Popen(
            [PY, "-c", BARE_FAUST % BOOT, topic, group, str(f), "drain" if drain else "faust"],
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
                return n_records / (last - first), max(peak_rss_mb(p.pid) for p in procs)
        raise RuntimeError("bare Faust agents did not finish in time")
    finally:
        for p in [*procs, *([copier] if copier else [])]:
            p.kill()
            p.wait()


REPLAY = """
import resource, sys, time
from aupwatch.cli import main
start = time.perf_counter()
rc = main(["replay", sys.argv[1], "--alerts", "/dev/null", "--dead-letters", "/dev/null",
    "--quiet"])
took = time.perf_counter() - start
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
sys.exit(rc)
"""


def replay(path: Path, n_records: int) -> tuple[float, float]:
    """Records/s of `aupwatch replay` on ``path`` in its own process, imports left out of
    the time, and its peak RSS (MB)."""
    out = subprocess.run(
        [PY, "-c", REPLAY, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=True,
        text=True,
    )
    took, rss = (float(x) for x in out.stdout.split()[-2:])
    return n_records / took, rss

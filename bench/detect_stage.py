"""Benchmark: the worker's detect stage outside Kafka, against replay's on the same records.

Generates N records (default 100,000), decodes them, then in one run measures per record:
  - replay: the in-process pipeline's detect shard (``Pipeline`` fed and stepped), timed
    over its detect stage only;
  - worker: a ``Stage("detect")`` of P partitions (default 4) fed the encoded messages the
    ingest stage would send (100 records per input message), timed over taking and
    advancing them: message decoding, re-read checks, per-partition items, changed-key
    tracking and the detectors.
Both run with the worker's garbage-collector settings. Prints microseconds per record and
their ratio. Usage: python bench/detect_stage.py [--records N] [--partitions P]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import Output
from aupwatch.detectors.pipeline import Pipeline, Routing, route
from aupwatch.detectors.watermarks import SourceClock
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.errors import BadRecord
from aupwatch.streams.generator.command import GeneratorConfig, generate
from aupwatch.streams.worker.ingest import split
from aupwatch.streams.worker.stages import Stage
from aupwatch.streams.worker.wire import encode, tag

PER_MESSAGE = 100


def records(n: int) -> list[Any]:
    out = []
    for line in generate(GeneratorConfig(seed=11, records=n, malformed_rate=0.0)).lines:
        try:
            out.append(decode_line(line))
        except BadRecord:
            continue
    return out


def replay_detect(recs: list[Any], config: DetectorConfig) -> float:
    """Seconds the pipeline's detect shard spends on the records (stepped every 4,096)."""
    pipe = Pipeline(config)
    detect = pipe.shards["detect"]
    spent = 0.0
    for start in range(0, len(recs), 4096):
        for rec in recs[start : start + 4096]:
            pipe.feed(rec)
        out = Output()
        t0 = time.perf_counter()
        detect.add(pipe.pending, out)
        pipe.pending = []
        detect.advance(pipe.watermark, out)
        spent += time.perf_counter() - t0
    out = Output()
    t0 = time.perf_counter()
    detect.advance(pipe.max_ts, out)
    return spent + time.perf_counter() - t0


def messages(recs: list[Any], config: DetectorConfig, parts: int) -> list[tuple[int, bytes]]:
    """The detect messages ingest sends for the records, with one input's markers."""
    routing, clock = Routing.of(config), SourceClock(config.allowed_lateness)
    out = []
    for start in range(0, len(recs), PER_MESSAGE):
        by_part: dict[int, list[Any]] = {p: [] for p in range(parts)}
        for line, rec in enumerate(recs[start : start + PER_MESSAGE], 1):
            clock.see(rec.ts)
            item = route(rec, 0, routing)
            if item is None:
                continue
            for idx, (part, unit) in enumerate(split(item, parts)):
                by_part[part].append(tag(unit, "i0", (start, line, idx)))
        wm = clock.watermark(False)
        for part, items in by_part.items():
            out += [(part, value) for value in encode(items, [["i0", wm, False]], 2000)]
    return out


def worker_detect(msgs: list[tuple[int, bytes]], config: DetectorConfig, parts: int) -> float:
    """Seconds a detect ``Stage`` spends taking the messages and deciding their items."""
    stage = Stage("detect", config, parts, ["i0"], {})
    out = Output()
    t0 = time.perf_counter()
    for n, (part, value) in enumerate(msgs, 1):
        stage.take(part, value, None, out)
        if n % (10 * parts) == 0:  # a batch of the worker: ten messages per partition
            stage.advance(set(stage.shards), out)
            out = Output()
    stage.take(0, b'{"m":[["i0",null,true,0]],"x":[]}', None, out)
    stage.advance(set(stage.shards), out)
    return time.perf_counter() - t0


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    # the worker's (and replay's) settings: state is millions of long-lived containers
    gc.freeze()
    gc.set_threshold(200_000, 50, 1000)
    config = DetectorConfig()
    recs = records(args.records)
    msgs = messages(recs, config, args.partitions)
    replay_s = replay_detect(recs, config)
    worker_s = worker_detect(msgs, config, args.partitions)
    n = len(recs)
    print(
        f"{n:,} records | replay detect {replay_s / n * 1e6:.1f} us/record | worker detect "
        f"stage ({args.partitions} partitions) {worker_s / n * 1e6:.1f} us/record | "
        f"worker / replay {worker_s / replay_s:.2f}x"
    )


if __name__ == "__main__":
    run()

"""Benchmark of the Kafka worker on the local broker (deploy/kafka/kafka.sh start first).

On one set of generated records, all in one run, for 1 and 100 records per message, on one
pre-filled topic each:
  - bare aiokafka consumer that only decodes (getmany + orjson.loads per record);
  - bare Faust agent that only decodes (same tuned settings and uvloop as the worker);
  - the full worker pipeline, one worker;
then, right after the last of those, `aupwatch replay` on the file in its own process (the
reference at 100/msg) and the peer at 1/msg: a Quix Streams pipeline (bench/peer_quix.py:
decode, one group_by hop, per-key state) in its own process, which needs the bench extra;
then for each batch size
  - scaling: one and two workers, and one and two bare Faust agents, each group joined
    (stable) before its records arrive, so no rebalance falls inside the measure: a
    rebalance makes the worker re-read everything not yet decided and committed; repeated
    --rounds times (default 3), the target judged on the median round, as single rounds
    on a shared 2-core machine spread more than the target's margin;
and, at a steady 2,000 records/s of live records, p50/p99 latency from a record's append
to its alert's append (both topics use LogAppendTime). It ends with issue 12's targets,
each ratio with its target and whether it is met, the ceiling a worker whose internal
hops cost nothing could reach, and the peak RSS of every process.

Rates are records / (time from the first record consumed to the last one done). For the
worker, "done" means every alerts-stage watermark (from its metrics endpoint) has reached
the last record's event time: every decision is made. That includes the idle flush of the
last 30 s of event time (idle_timeout is set to 1 s here).

Usage: python bench/stream.py [--records N] [--batches 1,100] [--skip-latency] [--skip-two]
       [--skip-peer] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import NamedTuple

import orjson
from stream_kafka import BOOT, bench_topics, delete_topics, fill, full_pipeline, make_topic
from stream_latency import latency
from stream_refs import bare_aiokafka, bare_faust, replay


class Target(NamedTuple):
    """One of issue 12's ratios: what is compared, the ratio measured, and its floor."""

    what: str
    ratio: float | None  # None when a side of it was skipped in this run
    floor: float
    unit: str  # "%", "x" or "" (a bare ratio)

    def show(self, x: float) -> str:
        return f"{x:.0%}" if self.unit == "%" else f"{x:.2f}{self.unit}"

    def line(self) -> str:
        goal = f"target >= {self.show(self.floor)}"
        if self.ratio is None:
            return f"  {self.what}: not measured ({goal})"
        met = "met" if self.ratio >= self.floor else "NOT met"
        return f"  {self.what} = {self.show(self.ratio)} ({goal}): {met}"


class Scaling(NamedTuple):
    """One round of the scaling measure: records/s of one and two of each, groups joined."""

    worker1: float
    worker2: float
    faust1: float
    faust2: float

    @property
    def ratio(self) -> float:
        """The speed-up of two workers over the speed-up of two bare Faust agents."""
        return (self.worker2 / self.worker1) / (self.faust2 / self.faust1)


def targets(
    rate: dict[str, float], batches: list[int], scaling: dict[int, list[Scaling]]
) -> list[Target]:
    """Issue 12's targets from what this run measured (absent keys: not measured)."""

    def vs(a: str, b: str) -> tuple[str, float | None]:
        ra, rb = rate.get(a), rate.get(b)
        shown = " vs ".join(f"{k} {rate[k]:,.0f}/s" if k in rate else k for k in (a, b))
        return shown, (ra / rb if ra and rb else None)

    out = [
        Target(*vs("worker x1 100/msg", "aupwatch replay"), 0.70, "%"),
        Target(*vs("worker x1 100/msg", "Quix peer 1/msg"), 2.0, "x"),
        Target(*vs("worker x1 1/msg", "bare Faust x1 1/msg"), 0.70, "%"),
    ]
    for b in batches:
        rounds = scaling.get(b, [])
        shown = ", ".join(f"{r.ratio:.2f}" for r in rounds)
        what = f"[{b}/msg] speed-up of two workers / of two bare Faust agents, median of "
        what += f"{len(rounds)} rounds ({shown})"
        ratio = statistics.median(r.ratio for r in rounds) if rounds else None
        out.append(Target(what, ratio, 0.9, ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batches", default="1,100")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-two", action="store_true")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the scaling measure")
    args = ap.parse_args()
    before = bench_topics()
    try:
        measure(args)
    finally:
        made = bench_topics() - before
        delete_topics(made)
        print(f"deleted the {len(made)} topics this run made", flush=True)


def measure(args: argparse.Namespace) -> None:
    """Every measure of one run, printed as it is made, then the targets."""
    from aupwatch.schemas.records import parse_ts
    from aupwatch.streams.generator.command import GeneratorConfig, generate, write

    batches = [int(b) for b in args.batches.split(",") if b]
    rate: dict[str, float] = {}
    rss: dict[str, float] = {}
    scaling: dict[int, list[Scaling]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.jsonl"
        gen = generate(GeneratorConfig(seed=5, records=args.records, malformed_rate=0.0))
        write(gen, path)
        last_ts = max(orjson.loads(line)["ts"] for line in gen.lines[-2000:])
        last_ts = parse_ts(last_ts) / 1e6 if isinstance(last_ts, str) else last_ts
        n_lines = len(gen.lines)
        del gen  # the lines in memory would only weigh on this process's collector
        topics: dict[int, tuple[str, int]] = {}
        for batch in batches:
            topic, n = topics[batch] = filled(path, batch)
            at = f"{batch}/msg"
            a = rate[f"bare aiokafka {at}"] = bare_aiokafka(topic, n)
            f, rss[f"bare Faust x1 {at}"] = bare_faust(topic, n, tmp)
            # the same agent handing messages on as the worker does (faust_app.drain_messages)
            fd, _ = bare_faust(topic, n, tmp, drain=True)
            t1, rss[f"worker x1 {at}"], gate = full_pipeline(topic, 1, tmp, last_ts)
            rate[f"bare Faust x1 {at}"], rate[f"worker x1 {at}"] = f, n / t1
            rate[f"bare Faust x1 {at}, worker's drain"] = fd
            print(
                f"[{at}] {n:,} records | bare aiokafka {a:,.0f}/s | bare Faust {f:,.0f}/s, "
                f"with the worker's drain {fd:,.0f}/s | worker x1 {n / t1:,.0f}/s "
                f"({n / t1 / f:.0%} of bare Faust, {n / t1 / fd:.0%} of it with the worker's "
                f"drain, {n / t1 / a:.0%} of aiokafka)",
                flush=True,
            )
            print(
                f"[{at}] link gate, held calls by outcome: "
                + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(gate.items())),
                flush=True,
            )
        # replay and the peer right after the last worker: the load drifts over a run
        rate["aupwatch replay"], rss["aupwatch replay"] = replay(path, n_lines)
        print(f"aupwatch replay: {n_lines:,} records, {rate['aupwatch replay']:,.0f}/s", flush=True)
        if not args.skip_peer:
            topic, n = topics[1] if 1 in topics else filled(path, 1)
            rate["Quix peer 1/msg"], rss["Quix peer 1/msg"] = peer(topic, n, tmp)
        for _ in range(args.rounds if not args.skip_two else 0):
            for batch, (topic, n) in topics.items():
                scaling.setdefault(batch, []).append(two(topic, n, tmp, last_ts, batch, rss))
        if not args.skip_latency:
            lat = latency(tmp)
            print(
                f"latency record append -> alert append at 2,000 records/s: p50 {lat.p50:.2f} s,"
                f" p99 {lat.p99:.2f} s, max {lat.top:.2f} s over {lat.alerts} alerts"
                " (allowed_lateness 30 s)",
                flush=True,
            )
            for when, counts in (("live", lat.live), ("at the end", lat.gate)):
                print(
                    f"link gate at 2,000 records/s, held calls by outcome {when}: "
                    + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counts.items())),
                    flush=True,
                )
    print("targets (issue 12), all measured in this run:")
    for target in targets(rate, batches, scaling):
        print(target.line())
    worker, drained = rate.get("worker x1 1/msg"), rate.get("bare Faust x1 1/msg, worker's drain")
    if worker and drained:  # not a target: Faust's reference with the worker's own drain
        print(
            f"  worker x1 1/msg vs bare Faust x1 1/msg with the worker's drain {drained:,.0f}/s"
            f" = {worker / drained:.0%} (no target: a stricter reference)"
        )
    for line in ceilings(rate):
        print(line)
    print("peak RSS: " + " | ".join(f"{k} {v:,.0f} MB" for k, v in rss.items()), flush=True)


def ceilings(rate: dict[str, float]) -> list[str]:
    """What a worker whose internal hops cost nothing could reach, from this run's rates.

    Such a worker still reads and decodes every record as bare Faust does and runs replay's
    detection on it: its time a record is at least the sum of theirs.
    """
    out = []
    for at, against in (("1/msg", "bare Faust x1 1/msg"), ("100/msg", "aupwatch replay")):
        faust, replayed = rate.get(f"bare Faust x1 {at}"), rate.get("aupwatch replay")
        if faust and replayed:
            top = 1 / (1 / faust + 1 / replayed)
            out.append(
                f"  ceiling with free hops, {at}: bare Faust {1e6 / faust:.1f} us + replay "
                f"{1e6 / replayed:.1f} us a record = {top:,.0f}/s, {top / rate[against]:.0%}"
                f" of {against}"
            )
    return out


def filled(path: Path, batch: int) -> tuple[str, int]:
    """A new 4-partition topic holding the records of ``path``, ``batch`` per message."""
    topic = f"bench-in-{batch}-{uuid.uuid4().hex[:6]}"
    make_topic(topic, 4)
    return topic, fill(topic, path, batch)


def peer(topic: str, n: int, tmp: str) -> tuple[float, float]:
    """The Quix peer on the 1/msg ``topic``, in its own process: records/s, peak RSS (MB)."""
    from peer_quix import run_peer  # only here: the rest runs without quixstreams installed

    got = run_peer(BOOT, topic, n, f"{tmp}/quix-{uuid.uuid4().hex[:6]}")
    print(f"[1/msg] Quix peer (decode, group_by hop, per-key state): {got.rate:,.0f}/s", flush=True)
    return got.rate, got.peak_rss_mb


def two(topic: str, n: int, tmp: str, last_ts: float, batch: int, rss: dict[str, float]) -> Scaling:
    """One round: one and two workers, one and two bare Faust agents, each group joined first.

    Each measure reads a fresh copy of ``topic``; the peak RSS kept is the largest of all
    rounds.
    """
    at = f"{batch}/msg"
    rates: dict[str, float] = {}
    for k in (1, 2):
        tag = uuid.uuid4().hex[:4]
        dst = f"{topic}-join{k}w-{tag}"
        make_topic(dst, 4)
        t, peak, _ = full_pipeline(dst, k, tmp, last_ts, source=topic)
        name = f"worker x{k} {at} joined (per worker)"
        rss[name] = max(rss.get(name, 0.0), peak)
        rates[f"w{k}"] = n / t
        dst = f"{topic}-join{k}f-{tag}"
        make_topic(dst, 4)
        rates[f"f{k}"], _ = bare_faust(dst, n, tmp, k, source=topic)
    got = Scaling(rates["w1"], rates["w2"], rates["f1"], rates["f2"])
    w1, w2, f1, f2 = got
    print(
        f"[{at}] group joined first: worker x1 {w1:,.0f}/s, x2 {w2:,.0f}/s = {w2 / w1:.2f}x"
        f" | bare Faust x1 {f1:,.0f}/s, x2 {f2:,.0f}/s = {f2 / f1:.2f}x | ratio {got.ratio:.2f}",
        flush=True,
    )
    return got


if __name__ == "__main__":
    main()

"""A worker joining a backlog: what the group reads again, with and without backpressure.

One worker starts on a backlog of generated records already in a 4-partition input topic
(``aupwatch generate``, then ``aupwatch replay FILE --to-kafka``); a second worker joins
``--join-after`` seconds after the first one took its first record, which makes the group
rebalance mid-backlog. Run once with ``worker.max_undecided`` at its default and once with
0 (no limit: the reference, measured in the same run).

Records re-read, exact per input partition: when a worker loses partitions in a rebalance
it counts the input records whose work the group will do again: those in input messages
it took and had not committed, and those whose items are in detect messages it took and
had not committed (detect items carry their input partition, offset and line), each
record once (``aupwatch_input_records_reread_total{partition}``, summed over the group).
The target is at most 2x ``max_undecided`` per partition. As a cross-check of the input
part, every worker also counts the lines it ingests per input partition
(``aupwatch_input_records_read_total``): summed over the group, minus the lines the
partition holds (read back from the topic, markers left out), that is the input re-read.
The throttle and alerts stages' internal messages are not counted. The final alerts of
each run must equal ``aupwatch replay FILE``'s.

Usage: python bench/rebalance.py [--records 200000] [--batch 100] [--join-after 4]
    [--limit N] [--sellers N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stream_kafka import BOOT, free_port, scrape  # noqa: E402
from tests.kafka_broker import delete_topics_from  # noqa: E402
from tests.streams.harness import (  # noqa: E402
    AUPWATCH,
    Deployment,
    describe_difference,
    read_topic,
    replay_alerts,
    wait_for_alerts,
)

READ = "aupwatch_input_records_read_total{"
REREAD = "aupwatch_input_records_reread_total{"


def lines_per_partition(topic: str) -> Counter[int]:
    """Record lines in each partition of the input topic (replay markers left out)."""
    out: Counter[int] = Counter()
    for msg in read_topic(BOOT, topic, idle_ms=3000):
        if any(k == "aupwatch.marker" for k, _ in msg.headers or []):
            continue
        out[msg.partition] += sum(1 for line in msg.value.split(b"\n") if line.strip())
    return out


def read_per_partition(ports: list[int], family: str = READ) -> Counter[int]:
    """A per-input-partition counter summed over the workers' metrics."""
    out: Counter[int] = Counter()
    for port in ports:
        for name, value in scrape(port).items():
            if name.startswith(family):
                out[int(name.split('partition="')[1].split('"')[0])] += int(value)
    return out


def run(
    logs: Path, expected: dict[str, Any], tmp: Path, limit: int, batch: int, join_after: float
) -> dict[str, object]:
    """One run: fill the topic, start a worker, a second one later; measure."""
    dep = Deployment(BOOT, tmp / f"limit-{limit}")
    dep.tmp.mkdir(parents=True)
    extra = {
        "AUPWATCH_WORKER__MAX_UNDECIDED": str(limit),
        # the shipped defaults, not the test harness's faster ones
        "AUPWATCH_WORKER__CHECKPOINT_INTERVAL": "2.0",
        "AUPWATCH_WORKER__SEEN_CHUNK": "512",
    }
    dep.create_input()
    dep.send(logs, batch=batch)
    ports = [free_port(), free_port()]
    started = time.monotonic()

    def start(name: str, port: int) -> None:
        cmd = [*AUPWATCH, "worker", "--log-level", "INFO", "--metrics-port", str(port)]
        env = dep.env(AUPWATCH_WORKER__DATA_DIR=str(dep.tmp / f"data-{name}"), **extra)
        log = (dep.tmp / f"{name}.log").open("ab")
        dep.procs.append(
            subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        )

    try:
        start("w1", ports[0])
        deadline = time.monotonic() + 120
        while not sum(read_per_partition_safe(ports[:1]).values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the first worker read nothing\n" + dep.logs())
            time.sleep(0.1)
        time.sleep(join_after)
        start("w2", ports[1])
        got = wait_for_alerts(dep, expected, timeout=900)
        took = time.monotonic() - started
        read = read_per_partition(ports)
        while True:  # every alert is out; wait until no worker reads anything more
            time.sleep(3)
            again = read_per_partition(ports)
            if again == read:
                break
            read = again
        reread = read_per_partition(ports, REREAD)
    finally:
        dep.stop_all()
    sizes = lines_per_partition(dep.input_topic)
    delete_topics_from(BOOT, f"{dep.group}-")
    logs_text = "".join(p.read_text(errors="replace") for p in dep.tmp.glob("*.log"))
    return {
        "limit": limit,
        "reread": {q: reread[q] for q in sorted(sizes)},
        "input": {q: read[q] - sizes[q] for q in sorted(sizes)},
        "sizes": sizes,
        "seconds": took,
        "pauses": logs_text.count(" paused: "),
        "match": got == expected,
        "difference": "" if got == expected else describe_difference(expected, got),
    }


def read_per_partition_safe(ports: list[int]) -> Counter[int]:
    """As ``read_per_partition``, empty while the metrics endpoint is not up yet."""
    try:
        return read_per_partition(ports)
    except OSError:
        return Counter()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--join-after", type=float, default=4.0)
    ap.add_argument("--limit", type=int, default=None, help="default: the shipped default")
    ap.add_argument("--sellers", type=int, default=None, help="few: uneven partitions")
    ap.add_argument("--repeat", type=int, default=1, help="pairs of runs (timing varies)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the workers' logs here")
    args = ap.parse_args()
    from aupwatch.streams.config import WorkerSettings

    limit = args.limit if args.limit is not None else WorkerSettings().max_undecided
    with tempfile.TemporaryDirectory() as name:
        tmp = args.keep or Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        logs = tmp / "logs.jsonl.gz"
        generate = ["generate", "--records", str(args.records), "--seed", "1"]
        if args.sellers:
            generate += ["--sellers", str(args.sellers)]
        subprocess.run(
            [*AUPWATCH, *generate, "--out", str(logs)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        expected = replay_alerts(logs)
        worst: dict[int, list[int]] = {limit: [], 0: []}
        for i, lim in enumerate([limit, 0] * args.repeat):
            r = run(logs, expected, tmp / f"run-{i}", lim, args.batch, args.join_after)
            reread, again = r["reread"], r["input"]
            assert isinstance(reread, dict) and isinstance(again, dict)
            label = f"max_undecided {lim:,}" if lim else "no limit (max_undecided 0)"
            sizes = r["sizes"]
            assert isinstance(sizes, Counter)
            worst[lim].append(max(reread.values()))
            verdict = f"target <= {2 * lim:,} per partition: " if lim else ""
            verdict += ("met" if worst[lim][-1] <= 2 * lim else "MISSED") if lim else "reference"
            print(
                f"[{label}] {args.records:,} records ("
                + ", ".join(f"{q}: {n:,}" for q, n in sorted(sizes.items()))
                + f"), {args.batch}/message, 2nd worker after "
                f"{args.join_after:g} s | re-read per partition "
                + ", ".join(f"{q}: {n:,}" for q, n in reread.items())
                + f" (total {sum(reread.values()):,}; {verdict}) | of which input lines "
                "ingested again (read - topic) "
                + ", ".join(f"{q}: {n:,}" for q, n in again.items())
                + f" | pauses {r['pauses']} | "
                f"all alerts out after {r['seconds']:.1f} s | alerts "
                + ("equal replay's" if r["match"] else f"DIFFER:\n{r['difference']}"),
                flush=True,
            )
        print(
            f"worst partition re-read per run: max_undecided {limit:,}: "
            + ", ".join(f"{n:,}" for n in worst[limit])
            + f" (target <= {2 * limit:,}); no limit: "
            + ", ".join(f"{n:,}" for n in worst[0]),
            flush=True,
        )


if __name__ == "__main__":
    main()

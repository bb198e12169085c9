"""Race harness: a running, idle consumer group gets a replay, and must answer as replay does.

Each run makes a fresh deployment (4-partition input, ``worker.idle_timeout`` 2 s), starts
one or two workers in a random order with random delays, leaves them idle 8-12 s, sends
the data set with ``aupwatch replay --to-kafka --batch 1`` or ``--batch 100``, in some runs
SIGKILLs a worker mid-stream and restarts it, then waits until the group's alerts equal
``aupwatch replay``'s (alert ids, final counts and contents) or stop changing. With
``--burn`` runs, a CPU-bound process runs beside the workers.

Usage: python bench/race.py [--runs 40] [--burn 20] [--data FILE] [--seed N]
Needs the local broker (``deploy/kafka/kafka.sh start``). Prints one line per run and
``N of M identical`` at the end; exits 1 if any run differed.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kafka_broker import delete_topics_from, ensure_broker  # noqa: E402
from tests.streams.harness import (  # noqa: E402
    Deployment,
    describe_difference,
    group_progress,
    latest_alerts,
    replay_alerts,
    topic_size,
)

DATA = ROOT / "tests" / "streams" / "worker" / "data" / "group-start.jsonl.gz"
FAST = {"AUPWATCH_WORKER__SESSION_TIMEOUT": "10"}  # a killed member leaves the group sooner


def settle(dep: Deployment, expected: dict, timeout: float, quiet: float) -> dict:
    """Polls the alerts until they equal ``expected``, or stop changing once input is read."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    changed_at = time.monotonic()
    while time.monotonic() < deadline:
        got = latest_alerts(dep.bootstrap, dep.alerts_topic)
        if got == expected:
            return got
        if got != last:
            last, changed_at = got, time.monotonic()
        done = group_progress(dep.bootstrap, dep.group, dep.input_topic) >= topic_size(
            dep.bootstrap, dep.input_topic
        )
        if done and time.monotonic() - changed_at > quiet:
            break
        time.sleep(2)
    return last


def one_run(
    i: int,
    rng: random.Random,
    data: Path,
    expected: dict,
    burn: bool,
    boot: str,
    tmp: Path,
    kill_share: float,
) -> tuple[bool, str]:
    workers = rng.choice((1, 2))
    batch = rng.choice((1, 100))
    kill = rng.random() < kill_share
    idle = rng.uniform(8, 12)
    gap = rng.uniform(0, 4)
    desc = f"workers={workers} batch={batch} kill={'yes' if kill else 'no'} idle={idle:.1f}s"
    desc += f" gap={gap:.1f}s burner={'yes' if burn else 'no'}"
    burner = None
    if burn:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    dep = Deployment(boot, tmp / f"run{i}")
    dep.tmp.mkdir(parents=True)
    try:
        dep.create_input()
        names = [f"w{n}" for n in range(workers)]
        rng.shuffle(names)
        procs = {}
        for name in names:
            procs[name] = dep.start_worker(name, **FAST)
            time.sleep(gap)
        time.sleep(idle)
        sender = subprocess.Popen(
            [*dep_cmd(), "replay", "--to-kafka", "--batch", str(batch), "--quiet", str(data)],
            env=dep.env(),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if kill:
            time.sleep(rng.uniform(0.5, 3.0))
            victim = rng.choice(names)
            procs[victim].kill()
            procs[victim].wait()
            time.sleep(rng.uniform(0, 3))
            procs[victim] = dep.start_worker(victim + "b", **FAST)
        sender.wait(timeout=300)
        # after a kill the group waits out the dead member's session, then rebalances
        got = settle(dep, expected, timeout=300, quiet=75 if kill else 30)
        ok = got == expected
        detail = "" if ok else "\n    " + describe_difference(expected, got).replace("\n", "\n    ")
        return ok, desc + detail
    finally:
        dep.stop_all()
        delete_topics_from(boot, f"{dep.group}-")
        if burner is not None:
            burner.kill()
            burner.wait()


def dep_cmd() -> list[str]:
    return [sys.executable, "-m", "aupwatch.cli"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--burn", type=int, default=20, help="runs with a CPU burner beside")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--kill-share", type=float, default=0.25, help="share of runs with a kill")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    boot = ensure_broker()
    expected = replay_alerts(args.data)
    print(f"race: {args.runs} runs, seed {seed}, {len(expected)} alerts expected", flush=True)
    burn = set(rng.sample(range(args.runs), min(args.burn, args.runs)))
    tmp = Path(tempfile.mkdtemp(prefix="aupwatch-race-"))
    same = 0
    for i in range(args.runs):
        start = time.monotonic()
        ok, desc = one_run(i, rng, args.data, expected, i in burn, boot, tmp, args.kill_share)
        same += ok
        verdict = "identical" if ok else "DIFFERS"
        print(f"run {i + 1:2d}: {verdict:9s} {time.monotonic() - start:5.0f}s {desc}", flush=True)
    print(f"{same} of {args.runs} identical to replay (logs: {tmp})")
    return 0 if same == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())

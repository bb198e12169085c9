"""Benchmark: this checkout's `aupwatch replay` against another checkout's, in one run.

Issue 13 asks that replay, with the seven detectors of version 2, be no more than 10 %
slower than before that change, each against the bare read + ``orjson.loads`` of the same
run. Rates of separate runs differ too much on a shared machine (the bare rate alone
moved from 855,000 to 1,050,000 lines/s within one hour here), so this runs both replays
on one generated file, alternating, each round beside a bare pass:

    git worktree add /tmp/before-v2 1f3dee1   # the last commit before detectors v2
    python bench/versus.py /tmp/before-v2 [--records N] [--rounds R]

Each replay runs in a fresh interpreter (the other checkout first on ``sys.path``) and
is timed by its CPU time; the first round of each also compiles its modules, so rounds
are summarised by their median. Prints records/s of each, their ratios to the bare pass
and this checkout's rate over the other's (issue 13: at least 0.90).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replay import bare  # bench/replay.py: the same bare loop as the ratio of issue 12

from aupwatch.streams.generator.command import GeneratorConfig, generate, write

HERE = Path(__file__).resolve().parents[1]


def replay_cpu(checkout: Path, logs: Path) -> float:
    """CPU seconds of one `aupwatch replay` of ``logs`` by the code of ``checkout``."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from aupwatch.cli import main; "
        "sys.argv = ['aupwatch', 'replay', sys.argv[2], '--alerts', '/dev/null', "
        "'--dead-letters', '/dev/null']; sys.exit(main())"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-c", code, str(checkout), str(logs)],
        env=env,
        cwd=checkout,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("other", type=Path, help="the checkout to compare with")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    other = args.other.resolve()
    if not (other / "aupwatch" / "cli.py").exists():
        sys.exit(f"versus: {other} is not an aupwatch checkout")
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "logs.jsonl"
        t0 = time.perf_counter()
        gen = generate(GeneratorConfig(seed=11, records=args.records))
        write(gen, logs)
        n = len(gen.lines)
        del gen
        print(f"generated {n:,} lines in {time.perf_counter() - t0:.1f} s", flush=True)
        rates: dict[str, list[float]] = {"bare": [], "this": [], "other": []}
        for r in range(args.rounds):
            _, took = bare(logs)
            rates["bare"].append(n / took.cpu)
            # alternate which goes first: neither always runs on a warmer page cache
            order = [("this", HERE), ("other", other)]
            for name, checkout in order if r % 2 == 0 else order[::-1]:
                rates[name].append(n / replay_cpu(checkout, logs))
            b, t, o = (rates[k][-1] for k in ("bare", "this", "other"))
            print(
                f"round {r + 1}: bare {b:,.0f} lines/s | this {t:,.0f} ({t / b:.1%}) | "
                f"other {o:,.0f} ({o / b:.1%}) | this/other {t / o:.2f}",
                flush=True,
            )
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(
            f"median of {args.rounds} (CPU time): bare {med['bare']:,.0f} records/s | "
            f"this {med['this']:,.0f} ({med['this'] / med['bare']:.1%}) | other "
            f"{med['other']:,.0f} ({med['other'] / med['bare']:.1%}) | this/other "
            f"{med['this'] / med['other']:.2f} (issue 13: at least 0.90)"
        )


if __name__ == "__main__":
    run()

"""Benchmark: `aupwatch replay` against a bare read-and-decode loop on the same file.

Generates N records (default 1,000,000), then in one run measures:
  - bare: read the lines and call orjson.loads on each, nothing else;
  - replay: the full `aupwatch replay` command (decode, validate, dead letters, all seven
    detectors, alert output), run in this process through the CLI entry point.
Prints records/s of both and the ratio (issue 12's target: at least 16%), by wall-clock
time and by this process's CPU time: on a shared machine the CPU-time ratio varies less.
Usage: python bench/replay.py [--records N] [--rounds R]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import orjson

from aupwatch.cli import main as aupwatch
from aupwatch.streams.generator.command import GeneratorConfig, generate, write


class Took(NamedTuple):
    """Seconds one measurement took."""

    wall: float
    cpu: float


def clocks() -> Took:
    return Took(time.perf_counter(), time.process_time())


def since(start: Took) -> Took:
    now = clocks()
    return Took(now.wall - start.wall, now.cpu - start.cpu)


def bare(path: Path) -> tuple[int, Took]:
    start = clocks()
    n = 0
    with path.open("rb") as f:
        for line in f:
            # a bare try costs nothing when nothing is raised; suppress() would slow the bare
            # loop and flatter the ratio
            try:  # noqa: SIM105
                orjson.loads(line)
            except orjson.JSONDecodeError:
                pass
            n += 1
    return n, since(start)


def full(path: Path) -> Took:
    start = clocks()
    with contextlib.redirect_stderr(io.StringIO()):
        rc = aupwatch(["replay", str(path), "--alerts", "/dev/null", "--dead-letters", "/dev/null"])
    assert rc == 0
    return since(start)


def generated(records: int, tmp: str) -> tuple[Path, int]:
    """Writes the bench's generated file (seed 11) in ``tmp``; returns it and its lines."""
    path = Path(tmp) / "logs.jsonl"
    gen = generate(GeneratorConfig(seed=11, records=records))
    write(gen, path, Path(tmp) / "truth.jsonl")
    return path, len(gen.lines)  # the lines go: in memory they would weigh on the collector


def arguments() -> argparse.Namespace:
    """``--records`` (default 1,000,000) and ``--rounds`` (default 3)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    return ap.parse_args()


def run() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path, lines = generated(args.records, tmp)
        size = path.stat().st_size
        print(
            f"generated {lines:,} lines ({size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        rates: dict[str, list[float]] = {"bare": [], "replay": [], "bare cpu": [], "replay cpu": []}
        for r in range(args.rounds):
            n, tb = bare(path)
            tf = full(path)
            for name, took in (("bare", tb), ("replay", tf)):
                rates[name].append(n / took.wall)
                rates[f"{name} cpu"].append(n / took.cpu)
            print(
                f"round {r + 1}: bare {n / tb.wall:,.0f} lines/s, replay {n / tf.wall:,.0f} "
                f"lines/s, ratio {tb.wall / tf.wall:.1%} | by CPU time: bare {n / tb.cpu:,.0f}, "
                f"replay {n / tf.cpu:,.0f}, ratio {tb.cpu / tf.cpu:.1%}",
                flush=True,
            )
        med = {name: statistics.median(values) for name, values in rates.items()}
        print(
            f"median of {args.rounds}: bare read+orjson.loads {med['bare']:,.0f} records/s | "
            f"aupwatch replay {med['replay']:,.0f} records/s | "
            f"ratio {med['replay'] / med['bare']:.1%} (target >= 16%)\n"
            f"  by CPU time: bare {med['bare cpu']:,.0f} records/s | replay "
            f"{med['replay cpu']:,.0f} records/s | ratio {med['replay cpu'] / med['bare cpu']:.1%}"
        )


if __name__ == "__main__":
    sys.exit(run())

"""Benchmark: `aupwatch replay` against a bare read-and-decode loop on the same file.

Generates N records (default 1,000,000), then in one run measures:
  - bare: read the lines and call orjson.loads on each, nothing else;
  - replay: the full `aupwatch replay` command (decode, validate, dead letters, all four
    detectors, alert output), run in this process through the CLI entry point.
Prints records/s of both and the ratio. Usage: python bench/replay.py [--records N] [--rounds R]
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

import orjson

from aupwatch.cli import main as aupwatch
from aupwatch.streams.generator.command import GeneratorConfig, generate, write


def bare(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    with path.open("rb") as f:
        for line in f:
            with contextlib.suppress(orjson.JSONDecodeError):
                orjson.loads(line)
            n += 1
    return n, time.perf_counter() - start


def full(path: Path) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        rc = aupwatch(["replay", str(path), "--alerts", "/dev/null", "--dead-letters", "/dev/null"])
    assert rc == 0
    return time.perf_counter() - start


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.jsonl"
        t0 = time.perf_counter()
        gen = generate(GeneratorConfig(seed=11, records=args.records))
        write(gen, path, Path(tmp) / "truth.jsonl")
        size = path.stat().st_size
        print(
            f"generated {len(gen.lines):,} lines ({size / 1e6:,.0f} MB) in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        bare_rates, full_rates = [], []
        for r in range(args.rounds):
            n, tb = bare(path)
            tf = full(path)
            bare_rates.append(n / tb)
            full_rates.append(n / tf)
            print(
                f"round {r + 1}: bare {n / tb:,.0f} lines/s, replay {n / tf:,.0f} lines/s, "
                f"ratio {tb / tf:.1%}",
                flush=True,
            )
        b, f = statistics.median(bare_rates), statistics.median(full_rates)
        print(
            f"median of {args.rounds}: bare read+orjson.loads {b:,.0f} records/s | "
            f"aupwatch replay {f:,.0f} records/s | ratio {f / b:.1%} (target >= 25%)"
        )


if __name__ == "__main__":
    sys.exit(run())

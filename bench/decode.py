"""Benchmark: `decode_line` (msgspec first) against the precise path alone.

Generates N records (default 300,000), then in one run, for R rounds, decodes every line
with each decoder: `decode_line_precise` (orjson, then field-by-field checks: the decoder
before msgspec, building the same record Structs) and `decode_line` (msgspec, falling back
to the precise path). Checks that
both give the same verdicts and records, then prints records/s of both and their ratio, by
wall-clock time and by CPU time (which varies less on a shared machine).
Usage: python bench/decode.py [--records N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from msgspec.structs import asdict

from aupwatch.schemas.decode import decode_line, decode_line_precise
from aupwatch.schemas.errors import BadRecord
from aupwatch.schemas.records import Record
from aupwatch.streams.generator.command import GeneratorConfig, generate


def timed(decode: Callable[[bytes], Record], lines: list[bytes]) -> tuple[float, float]:
    """Wall-clock and CPU seconds to decode every line."""
    wall, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        # a bare try costs nothing when nothing is raised; suppress() would add its own cost
        try:  # noqa: SIM105
            decode(line)
        except BadRecord:
            pass
    return time.perf_counter() - wall, time.process_time() - cpu


def verdicts(decode: Callable[[bytes], Record], lines: list[bytes]) -> list[object]:
    out: list[object] = []
    for line in lines:
        try:
            rec = decode(line)
        except BadRecord as exc:
            out.append((exc.reason, exc.message))
        else:
            out.append((type(rec), [(k, type(v), v) for k, v in asdict(rec).items()]))
    return out


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    # as replay reads them: each line with its newline
    gen = generate(GeneratorConfig(seed=11, records=args.records))
    lines = [line + b"\n" for line in gen.lines]
    print(f"generated {len(lines):,} lines in {time.perf_counter() - t0:.1f} s", flush=True)
    same = verdicts(decode_line_precise, lines) == verdicts(decode_line, lines)
    print(f"identical verdicts and records: {same}", flush=True)
    n = len(lines)
    wall_ratios, cpu_ratios, old_rates, new_rates = [], [], [], []
    for r in range(args.rounds):
        old, old_cpu = timed(decode_line_precise, lines)
        new, new_cpu = timed(decode_line, lines)
        old_rates.append(n / old)
        new_rates.append(n / new)
        wall_ratios.append(old / new)
        cpu_ratios.append(old_cpu / new_cpu)
        print(
            f"round {r + 1}: precise {n / old:,.0f} lines/s, msgspec {n / new:,.0f} lines/s, "
            f"ratio {old / new:.2f}x | by CPU time: precise {n / old_cpu:,.0f}, msgspec "
            f"{n / new_cpu:,.0f}, ratio {old_cpu / new_cpu:.2f}x",
            flush=True,
        )
    print(
        f"median of {args.rounds}: precise path {statistics.median(old_rates):,.0f} "
        f"records/s | msgspec {statistics.median(new_rates):,.0f} records/s | "
        f"ratio {statistics.median(wall_ratios):.2f}x, by CPU time "
        f"{statistics.median(cpu_ratios):.2f}x (issue: 2.1x)"
    )
    if not same:
        sys.exit("verdicts differ")


if __name__ == "__main__":
    run()

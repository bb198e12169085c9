"""Benchmark: what each detector costs `aupwatch replay`, by switching it off.

Generates N records (default 1,000,000), then runs the full `aupwatch replay` command on
them once per variant, the variants alternating within each round:
  - all on: the default settings;
  - each detector switched off (`[detectors.<name>] enabled = false`): routing then
    drops the steps no enabled detector needs, so the difference is that detector's whole
    cost (its state keys, steps, timers and outputs);
  - ownership retention 0: ownership is kept forever, so no retention timer is armed;
  - both of the two largest off: throttle_disrespect off and ownership retention 0;
  - all off: every detector switched off, what reading, decoding and validating cost.
Each round also times the bare read + ``orjson.loads`` loop of bench/replay.py. Prints, per
variant, the median CPU seconds of this process, what all on costs more (all on minus the
variant) per record and as a share of all on, and the variant's rate as a share of the
bare loop's (the ratio bench/replay.py judges, by CPU time). CPU time, not wall-clock
time: on a shared machine it moves less.
Usage: python bench/replay_costs.py [--records N] [--rounds R]
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from replay import arguments, bare, generated

from aupwatch.cli import main as aupwatch
from aupwatch.detectors.registry import DETECTORS


def variants() -> dict[str, str]:
    """Variant name -> the TOML that makes it (empty: the defaults)."""
    off = {d.name: f"[detectors.{d.name}]\nenabled = false\n" for d in DETECTORS}
    no_retention = '[disclosure]\nownership_retention = "0s"\n'
    return {
        "all on": "",
        **{f"{name} off": toml for name, toml in off.items()},
        "ownership retention 0": no_retention,
        "both of the two largest off": off["throttle_disrespect"] + no_retention,
        "all off": "".join(off.values()),
    }


def cpu_seconds(path: Path, config: Path | None) -> float:
    """CPU seconds of one full replay of ``path`` with ``config``."""
    argv = ["replay", str(path), "--alerts", "/dev/null", "--dead-letters", "/dev/null"]
    if config is not None:
        argv += ["--config", str(config)]
    start = time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):
        rc = aupwatch(argv)
    assert rc == 0, f"replay failed with {argv}"
    return time.process_time() - start


def run() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory() as tmp:
        path, n = generated(args.records, tmp)
        configs: dict[str, Path | None] = {}
        for i, (name, toml) in enumerate(variants().items()):
            configs[name] = None
            if toml:
                configs[name] = Path(tmp) / f"v{i}.toml"
                configs[name].write_text(toml)  # type: ignore[union-attr]
        took: dict[str, list[float]] = {name: [] for name in configs}
        bare_cpu: list[float] = []
        cpu_seconds(path, configs["all off"])  # untimed: the first replay imports modules
        for r in range(args.rounds):
            bare_cpu.append(bare(path)[1].cpu)
            for name, config in configs.items():
                took[name].append(cpu_seconds(path, config))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in took.items()))
        med = {name: statistics.median(values) for name, values in took.items()}
        base, ref = med["all on"], statistics.median(bare_cpu)
        print(
            f"{n:,} lines, median CPU of {args.rounds} rounds (bare read + orjson.loads "
            f"{ref:.2f} s); all on costs more by, and the rate as a share of bare:"
        )
        for name, secs in med.items():
            diff = base - secs  # what the variant's switch saves
            print(
                f"  {name:36s} {secs:6.2f} s  {diff / n * 1e6:+6.2f} us/record  "
                f"{diff / base:+6.1%}  ratio {ref / secs:5.1%}"
            )


if __name__ == "__main__":
    sys.exit(run())

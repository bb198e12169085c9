"""bench/versus.py: two checkouts' replays on one file, each against the bare pass."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compares_this_checkout_with_another() -> None:
    # this checkout against itself: both replays run, each rate is reported with its ratio
    out = subprocess.run(
        [sys.executable, "bench/versus.py", str(ROOT), "--records", "3000", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    summary = out.strip().splitlines()[-1]
    m = re.search(r"this ([\d,]+) \(.*\) \| other ([\d,]+) \(.*\) \| this/other ([\d.]+)", summary)
    assert m, out
    this, other = (int(g.replace(",", "")) for g in m.groups()[:2])
    assert this > 0 and other > 0 and float(m.group(3)) > 0


def test_refuses_a_folder_that_is_not_a_checkout(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "bench/versus.py", str(tmp_path), "--records", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1 and "is not an aupwatch checkout" in run.stderr

"""The README's table of detectors lists every declared detector and its reasons."""

from __future__ import annotations

import re
from pathlib import Path

from aupwatch.detectors.registry import DETECTORS

README = Path(__file__).resolve().parents[1] / "README.md"


def _table() -> dict[str, list[str]]:
    """Detector -> reasons, from the rows of the README's first table."""
    rows: dict[str, list[str]] = {}
    for line in README.read_text().split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (name := re.fullmatch(r"`(\w+)`", cells[0])):
            rows[name.group(1)] = re.findall(r"`(\w+)`", cells[2])
    return rows


def test_readme_lists_every_detector_with_its_reasons_in_order() -> None:
    declared = {d.name: [r.code for r in d.reasons] for d in DETECTORS}
    assert _table() == declared

"""bench/replay_costs.py and bench/replay_floor.py: their variants are what they say."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from aupwatch.detectors.registry import DETECTORS, live_prefixes
from aupwatch.streams.config import load_config

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path, int]:
    sys.path.insert(0, str(BENCH))  # the benches import their sibling bench/replay.py
    try:
        costs = importlib.import_module("replay_costs")
        floor = importlib.import_module("replay_floor")
        replay = importlib.import_module("replay")
    finally:
        sys.path.remove(str(BENCH))
    path, n = replay.generated(3_000, str(tmp_path_factory.mktemp("floor")))
    return costs, floor, path, n


def test_each_variant_is_a_valid_config_that_switches_what_it_names(bench, tmp_path) -> None:
    costs = bench[0]
    variants = costs.variants()
    assert variants["all on"] == ""
    for name, toml in variants.items():
        (tmp_path / "v.toml").write_text(toml)
        config = load_config(tmp_path / "v.toml", environ={}).detectors
        if name.endswith(" off") and name.removesuffix(" off") in {d.name for d in DETECTORS}:
            assert config.disabled == {name.removesuffix(" off")}
        elif name == "all off":
            assert live_prefixes(config) == frozenset()
        elif "retention" in name or "largest" in name:
            assert config.ownership_retention == 0
    assert {d.name for d in DETECTORS} <= {n.removesuffix(" off") for n in variants}


def test_the_floor_reads_every_valid_record_once_in_order_per_step(bench) -> None:
    floor, path, n = bench[1], bench[2], bench[3]
    recs = list(floor.ordered(path))
    assert 0.9 * n < len(recs) < n  # the generated file holds some malformed lines
    for start in range(0, len(recs), 1024):
        chunk = recs[start : start + 1024]
        assert chunk == sorted(chunk, key=lambda r: (r.ts, r.event_id))


def test_the_floor_does_the_same_work_with_either_state_shape(bench) -> None:
    floor, path = bench[1], bench[2]
    config = floor.DetectorConfig()
    sketches = [floor.Sketch(config, light) for light in (False, True)]
    for sketch in sketches:
        for rec in floor.ordered(path):
            sketch.record(rec)
    heavy, light = sketches
    assert heavy.findings == light.findings > 0
    for name in ("dormant", "owners", "links", "ownership", "scopes", "grants"):
        assert len(getattr(heavy, name)) == len(getattr(light, name)) > 0, name

"""bench/detect_stage.py: its worker stage decides what replay's detect shard decides."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import Output
from aupwatch.detectors.pipeline import Pipeline
from aupwatch.streams.worker.stages import Stage

PATH = Path(__file__).resolve().parents[2] / "bench" / "detect_stage.py"
spec = importlib.util.spec_from_file_location("detect_stage", PATH)
assert spec is not None and spec.loader is not None
detect_stage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(detect_stage)


def test_the_measured_stage_decides_what_replay_decides() -> None:
    config = DetectorConfig()
    recs = detect_stage.records(4_000)
    pipe = Pipeline(config)
    for rec in recs:
        pipe.feed(rec)
    want = Output()
    pipe.shards["detect"].add(pipe.pending, want)
    pipe.shards["detect"].advance(pipe.max_ts, want)
    stage = Stage("detect", config, 4, ["i0"], {})
    got = Output()
    for part, value in detect_stage.messages(recs, config, 4):
        stage.take(part, value, None, got)
    stage.take(0, b'{"m":[["i0",null,true,0]],"x":[]}', None, got)
    stage.advance(set(stage.shards), got)
    assert want.occurrences and sorted(got.occurrences) == sorted(want.occurrences)
    assert len(got.forwards) == len(want.forwards)

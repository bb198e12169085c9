"""Pure bookkeeping of the worker's stages: shards, upstream markers, idleness (no broker)."""

from __future__ import annotations

from typing import Any

import orjson

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import Output
from aupwatch.streams.worker.stages import Stage


def _no_grant_call(ts: int, source: str, offset: int) -> list[Any]:
    """A detect item as ingest sends it: a call for a seller that never authorized the app."""
    return [ts, 2, f"e{offset}", "U\x1fapp\x1fseller", ["c", "dev", "getOrders", 200], 0, source,
            [offset, 1, 0]]  # fmt: skip


def test_all_sources_idle_decide_every_buffered_item() -> None:
    # i1's new owner found it all committed: its idle marker promises no time at all
    stage = Stage("detect", DetectorConfig(), 1, ["i0", "i1"], {})
    out = Output()
    late_ts = 100_000_000
    msg = {"m": [["i0", late_ts - 30_000_000, False]], "x": [_no_grant_call(late_ts, "i1", 7)]}
    stage.take(0, orjson.dumps(msg), "token", out)
    stage.advance({0}, out)
    assert not out.occurrences  # not every source has sent a marker yet
    stage.take(0, orjson.dumps({"m": [["i0", 50_000_000, True], ["i1", None, True]], "x": []}),
               None, out)  # fmt: skip
    stage.advance({0}, out)
    assert [o[3] for o in out.occurrences] and out.tokens == ["token"]
    assert stage.shards[0].wm == late_ts

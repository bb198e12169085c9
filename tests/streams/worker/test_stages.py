"""Pure bookkeeping of the worker's stages: shards, upstream markers, idleness (no broker)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import Output
from aupwatch.errors import AupwatchError
from aupwatch.streams.worker.keys import STATE_FORMAT, format_key
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


def test_state_of_a_newer_format_is_refused_with_a_clear_error() -> None:
    stage = Stage("detect", DetectorConfig(), 2, ["i0"], {format_key(1): STATE_FORMAT + 1})
    stage.shard(0)  # partition 0 holds no format key: an older worker's state is read
    with pytest.raises(AupwatchError, match="upgrade every worker") as err:
        stage.shard(1)
    assert err.value.context == {"stage": "detect", "partition": 1}


def test_an_idle_input_with_records_waiting_holds_the_shard() -> None:
    stage = Stage("detect", DetectorConfig(), 1, ["i0", "i1"], {})
    out = Output()
    msg = {"m": [["i0", 200_000_000, False], ["i1", 50_000_000, True, 7]], "x": []}
    stage.take(0, orjson.dumps(msg), None, out)
    stage.advance({0}, out, waiting=frozenset({"i1"}))
    assert stage.shards[0].wm == 50_000_000  # i1's promise, not i0's
    assert stage.idle_ends({0}) == {"i1": 7}
    stage.advance({0}, out)  # a fresh end offset found nothing behind offset 7
    assert stage.shards[0].wm == 200_000_000

"""Pure bookkeeping of the worker's stages: shards, upstream markers, idleness (no broker)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import SEEN, Output
from aupwatch.detectors.record_shard import RecordShard
from aupwatch.errors import AupwatchError
from aupwatch.streams.worker.keys import STATE_FORMAT, format_key, frontier_key, ids_key
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


def _packed_no_grant_call(ts: int, eid: str, offset: int) -> list[Any]:
    """The same call as today's ingest sends it: its keys and its packed record."""
    packed = ["c", "dev", "app", "getOrders", 200, "10.0.0.1", "seller", "NA"]
    return [ts, 2, eid, ["U\x1fapp\x1fseller"], packed, 0, "i0", [offset, 1, 0]]


def test_state_of_format_2_is_read_its_ids_kept_per_key() -> None:
    key, frontier = "U\x1fapp\x1fseller", 60_000_000
    data: dict[str, Any] = {
        format_key(0): 2,
        frontier_key(0): frontier,
        # a key of format 2 remembers its own ids; a grant's state, written at the frontier
        key: [{"e1": 10_000_000}, {"a": "r"}, 64, frontier],
    }
    stage = Stage("detect", DetectorConfig(), 1, ["i0"], data)
    shard = stage.shard(0)
    assert isinstance(shard, RecordShard)
    assert data[key][SEEN] == {} and shard.ids == {f"e1\x1f{key}": 10_000_000}
    assert shard.take_dirty() == {ids_key(0)}
    out = Output()
    # e1 again (re-read, before the frontier) and e2, new: only e2 is judged
    msg = {"m": [["i0", 100_000_000, True]],
           "x": [_packed_no_grant_call(10_000_000, "e1", 3),
                 _packed_no_grant_call(70_000_000, "e2", 4)]}  # fmt: skip
    stage.take(0, orjson.dumps(msg), None, out)
    stage.advance({0}, out)
    assert [o[2] for o in out.occurrences] == ["e2"]  # revoked
    assert "e2" in shard.ids and ids_key(0) in shard.take_dirty()


def test_a_checkpoint_writes_the_keys_whose_state_a_record_kept_or_changed() -> None:
    key = "U\x1fapp\x1fseller"
    stage = Stage("detect", DetectorConfig(), 1, ["i0"], {})
    shard = stage.shard(0)
    out = Output()
    msg = {"m": [["i0", 100_000_000, True]], "x": [_packed_no_grant_call(10_000_000, "e1", 3)]}
    stage.take(0, orjson.dumps(msg), None, out)
    stage.advance({0}, out)
    assert [o[2] for o in out.occurrences] == ["e1"]  # no grant: no state, nothing to write
    assert shard.take_dirty() == {ids_key(0)}
    grant = [20_000_000, 1, "g1", [key], ["g", ["orders"], None], 0, "i0", [4, 1, 0]]
    again = _packed_no_grant_call(30_000_000, "e2", 5)
    msg = {"m": [["i0", 200_000_000, True]], "x": [grant, again]}
    stage.take(0, orjson.dumps(msg), None, out)
    stage.advance({0}, out)
    assert shard.take_dirty() == {ids_key(0), key} and shard.take_dirty() == set()


def test_remembered_ids_after_the_frontier_are_not_trusted() -> None:
    data: dict[str, Any] = {
        frontier_key(0): 50,
        ids_key(0): [{"old": 40, "cut-short": 70}, None, 0, 70],
    }
    shard = Stage("detect", DetectorConfig(), 1, ["i0"], data).shard(0)
    assert isinstance(shard, RecordShard) and shard.ids == {"old": 40}
    assert data[ids_key(0)][SEEN] is shard.ids  # what a checkpoint writes


def _checkpoint(stage: Stage, changelog: dict[str, Any]) -> None:
    """What ``Checkpointer.run`` writes for every shard of the stage, into a dict."""
    for p, shard in stage.shards.items():
        for key in shard.take_dirty():
            entry = stage.data.get(key)
            if entry is not None:
                del entry[3:]
                entry.append(shard.wm)
            for k, v in stage.seen_log.records(key, entry):
                if v is None:
                    changelog.pop(k, None)
                else:
                    changelog[k] = orjson.loads(orjson.dumps(v))
        changelog[frontier_key(p)] = stage.data[frontier_key(p)] = shard.wm
    stage.expire()  # the checkpoint is durable


def test_record_ids_go_to_the_changelog_in_chunks_and_come_back() -> None:
    stage = Stage("detect", DetectorConfig(), 2, ["i0"], {}, seen_chunk=4)
    changelog: dict[str, Any] = {}
    out = Output()
    for n in range(3):  # three checkpoints of ten records each
        calls = [_packed_no_grant_call(1_000_000 * (10 * n + i), f"e{10 * n + i}", 10 * n + i)
                 for i in range(10)]  # fmt: skip
        msg = {"m": [["i0", 1_000_000 * (10 * n + 9), False]], "x": calls}
        stage.take(1, orjson.dumps(msg), None, out)
        stage.advance({1}, out)
        _checkpoint(stage, changelog)
    before = dict(stage.shards[1].ids)
    assert len(before) == 30 and any("\x1e" in k for k in changelog)  # chunks were written
    again = Stage("detect", DetectorConfig(), 2, ["i0"], dict(changelog), seen_chunk=4)
    shard = again.shard(1)
    assert isinstance(shard, RecordShard) and shard.ids == before
    # a re-delivered record (at or before the restored frontier) is skipped whole
    late = {"m": [], "x": [_packed_no_grant_call(29_000_000, "e29", 99)]}
    skipped = Output()
    again.take(1, orjson.dumps(late), None, skipped)
    assert not skipped.occurrences and not shard.buffer


SCOPE = "R\x1fapp\x1fseller\x1fgetOrders"


def _retry_call(ts: int, eid: str, offset: int) -> list[Any]:
    """A call that opens a retry scope (``throttle_disrespect``), dropped two windows on."""
    packed = ["c", "dev", "app", "getOrders", 200, "10.0.0.1", "seller", "NA"]
    return [ts, 2, eid, [SCOPE], packed, 0, "i0", [offset, 1, 0]]


def _feed(stage: Stage, items: list[Any], wm: int) -> None:
    stage.take(0, orjson.dumps({"m": [["i0", wm, False]], "x": items}), None, Output())
    stage.advance({0}, Output())


def test_a_persisted_key_whose_state_ends_stays_empty_until_a_frontier_passes_it() -> None:
    stage = Stage("detect", DetectorConfig(), 1, ["i0"], {})
    changelog: dict[str, Any] = {}
    _feed(stage, [_retry_call(1_000_000, "e1", 1)], 2_000_000)
    _checkpoint(stage, changelog)
    assert changelog[SCOPE][1]["c"] == [1_000_000]
    _feed(stage, [], 3_600_000_000)  # the scope's timer drops it
    assert stage.data[SCOPE][1] is None and SCOPE not in stage.shards[0].store
    assert SCOPE in stage.views[0].emptied
    _checkpoint(stage, changelog)  # writes the empty entry; its frontier then passes it
    assert changelog[SCOPE][1] is None and changelog[SCOPE][3] == 3_600_000_000
    assert SCOPE not in stage.data and not stage.views[0].emptied
    _checkpoint(stage, changelog)  # and deletes it from the changelog
    assert SCOPE not in changelog


def test_a_restored_empty_entry_past_the_frontier_still_skips_what_its_key_applied() -> None:
    # a checkpoint cut short wrote the scope's end (at 90 s) but not the frontier (60 s)
    data: dict[str, Any] = {frontier_key(0): 60_000_000, SCOPE: [{}, None, 64, 90_000_000, 0, 0]}
    stage = Stage("detect", DetectorConfig(), 1, ["i0"], data)
    shard = stage.shard(0)
    _feed(stage, [_retry_call(80_000_000, "e8", 8)], 100_000_000)
    assert SCOPE not in shard.store  # e8 had been applied before the scope ended
    stage.data[frontier_key(0)] = 85_000_000
    stage.expire()
    assert SCOPE in stage.data  # the frontier has not passed its mark yet
    stage.data[frontier_key(0)] = 100_000_000
    stage.expire()
    assert SCOPE not in stage.data and SCOPE in shard.take_dirty()


def test_a_marker_stays_below_an_output_still_held_and_is_not_idle() -> None:
    stage = Stage("detect", DetectorConfig(), 2, ["i0"], {})
    out = Output()
    for p in (0, 1):
        stage.take(p, orjson.dumps({"m": [["i0", 70_000_000, True]], "x": []}), None, out)
    stage.advance({0, 1}, out)
    held = {0: 60_000_000}
    assert stage.markers("d", True, held.get) == [
        ["d0", 59_999_999, False],
        ["d1", 100_000_000, True],
    ]
    assert stage.markers("d", True, held.get) == []  # sent already
    held.clear()
    assert stage.markers("d", True, held.get) == [["d0", 100_000_000, True]]
    notices = stage.take(0, b'{"m":[],"x":[],"n":[[1,5,[["dev","T\\u001fx",4]]]]}', None, out)
    assert notices == [(1, 5, [("dev", "T\x1fx", 4)])]

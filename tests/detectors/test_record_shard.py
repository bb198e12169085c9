"""The detect shard's maps: one per detector step offline, one view of all in a worker."""

from __future__ import annotations

from typing import Any

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.declare import SEP
from aupwatch.detectors.engine import Output
from aupwatch.detectors.pipeline import Pipeline, route, stage_operators
from aupwatch.detectors.record_shard import RecordShard
from tests.detectors.support import decode_all
from tests.detectors.test_horizons import _call

CONFIG = DetectorConfig()


def _items(n: int) -> list[Any]:
    calls = [_call(f"e{i}", f"10:00:{i:02d}", seller=f"S{i % 3}", status=200) for i in range(n)]
    items = [route(rec) for rec in decode_all(calls)]
    assert all(item is not None for item in items)
    return items


def test_each_step_keeps_its_states_in_a_map_of_its_own() -> None:
    shard = RecordShard(stage_operators("detect", CONFIG), CONFIG, track_dirty=False)
    items = _items(6)
    shard.add(items, Output())
    shard.advance(max(item[0] for item in items), Output())  # no timer due yet
    assert len({id(m) for m in shard.maps.values()}) == len(shard.maps)
    for prefix, states in shard.maps.items():
        assert all(key[0] == prefix for key in states)
    sizes = shard.state_sizes()
    assert sizes == {p: len(m) for p, m in shard.maps.items()}
    # no grant: the calls leave no state for U
    assert (sizes["D"], sizes["L"], sizes["R"], sizes["U"]) == (1, 1, 3, 0)
    # the shard's store reads every step's states
    assert set(shard.store) == {key for states in shard.maps.values() for key in states}
    key = f"D{SEP}k-1"
    assert shard.store[key] is shard.maps["D"][key]


def test_a_given_store_holds_every_step() -> None:
    store: dict[str, Any] = {}
    shard = RecordShard(stage_operators("detect", CONFIG), CONFIG, store, track_dirty=False)
    assert all(m is store for m in shard.maps.values()) and shard.store is store
    items = _items(6)
    shard.add(items, Output())
    shard.advance(max(item[0] for item in items), Output())  # no timer due yet
    assert {key[0] for key in store} == {"D", "K", "L", "R"}
    assert shard.state_sizes()["R"] == 3


def test_replay_alerts_do_not_depend_on_the_maps() -> None:
    records = decode_all(
        [_call(f"e{i}", f"10:{i // 60:02d}:{i % 60:02d}", status=429) for i in range(40)]
    )

    def alerts(store: dict[str, Any] | None) -> list[Any]:
        pipe = Pipeline(CONFIG)
        if store is not None:  # the detect stage over one dict, as a worker's view
            detect = pipe.shards["detect"]
            pipe.shards["detect"] = RecordShard(
                list(detect.ops.values()), CONFIG, store, track_dirty=False
            )
        for rec in records:
            pipe.feed(rec)
        return pipe.step(final=True)

    one = alerts({})
    assert one and one == alerts(None)

"""The detect shard's maps (one per step offline, one view in a worker) and quiet timers."""

from __future__ import annotations

import copy
import dataclasses
import random
from typing import Any

import pytest

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


def _storm(seed: int) -> list[Any]:
    """Calls of a few retry scopes over an hour, most throttled, a tenth of them late."""
    rng = random.Random(seed)
    calls = []
    for i in range(400):
        sec = rng.randrange(3600)
        calls.append(
            _call(
                f"e{i}",
                f"10:{sec // 60:02d}:{sec % 60:02d}.{rng.randrange(1000):03d}",
                seller=rng.choice(["S1", "S2"]),
                status=429 if rng.random() < 0.6 else 200,
                app_id=rng.choice(["app-1", "app-2"]),
            )
        )
    calls.sort(key=lambda c: c["ts"])
    for i in range(0, len(calls) - 1, 10):  # arrives 1-20 minutes of calls later: late
        late = calls.pop(i)
        calls.insert(min(len(calls), i + rng.randrange(10, 200)), late)
    return decode_all(calls)


@pytest.mark.parametrize("seed", range(6))
def test_quiet_timers_fire_as_the_others_would(seed: int) -> None:
    records = _storm(seed)
    step_every = random.Random(seed).choice([1, 7, 50])

    config = dataclasses.replace(CONFIG, min_throttled=3)

    def run(quiet: bool) -> tuple[list[Any], dict[str, Any], int]:
        pipe = Pipeline(config)
        ops = list(pipe.shards["detect"].ops.values())
        for op in ops:
            if op.prefix == "R":
                op.quiet_timers = quiet  # type: ignore[attr-defined]
        shard = RecordShard(ops, config, track_dirty=False)
        assert bool(shard.quiet) is quiet
        pipe.shards["detect"] = shard
        alerts = []
        for n, rec in enumerate(records, 1):
            pipe.feed(rec)
            if n % step_every == 0:
                alerts += pipe.step()
        alerts += pipe.step(final=True)
        return alerts, copy.deepcopy(dict(shard.store)), pipe.stats.late

    quiet, plain = run(True), run(False)
    assert quiet[2] > 0  # some records took the late path
    assert any(a["detector"] == "throttle_disrespect" for a in quiet[0])
    assert quiet == plain


def test_a_restored_shard_puts_quiet_timers_apart() -> None:
    due = 5 + 2 * CONFIG.disrespect_window + 1  # two windows after the scope's only call
    store: dict[str, Any] = {
        f"R{SEP}app-1{SEP}S1{SEP}getOrders": {"c": [5], "q": [], "_t": due},
        f"O{SEP}app-1{SEP}r-1": {"own": {"S1": 5}, "_t": 30},
        f"D{SEP}k-1": {
            "dev": "d",
            "clock": 5,
            "ok": 5,
            "st": "active",
            "warned": False,
            "_t": None,
        },
    }
    shard = RecordShard(stage_operators("detect", CONFIG), CONFIG, store, track_dirty=True)
    assert shard.quiet == {"R"}
    assert shard.quiet_timers == [(due, f"R{SEP}app-1{SEP}S1{SEP}getOrders")]
    assert sorted(shard.timers) == [(30, f"O{SEP}app-1{SEP}r-1")]
    shard.restore(due - 1)
    shard.advance(due, Output())  # the retry scope's timer fires with the watermark
    assert f"R{SEP}app-1{SEP}S1{SEP}getOrders" not in store
    assert f"R{SEP}app-1{SEP}S1{SEP}getOrders" in shard.take_dirty()


def test_dirty_keys_are_those_a_record_stored_or_changed() -> None:
    store: dict[str, Any] = {}
    shard = RecordShard(stage_operators("detect", CONFIG), CONFIG, store, track_dirty=True)
    items = _items(6)
    shard.add(items, Output())
    shard.advance(max(item[0] for item in items), Output())
    # the sellers never granted the app: their U keys hold no state, and are not written
    assert shard.take_dirty() == set(store) and not any(key[0] == "U" for key in store)
    later = [_call("e9", "10:00:30", seller="S0", status=200)]
    (item,) = [route(rec) for rec in decode_all(later)]
    assert item is not None
    shard.add([item], Output())
    shard.advance(item[0], Output())
    assert shard.take_dirty() == {k for k in item[3] if k[0] != "U"}

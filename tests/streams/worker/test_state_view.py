"""The detect shard's key -> state view over a stage table's entries (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from aupwatch.detectors.engine import NEVER, PRUNE_MIN
from aupwatch.streams.worker.keys import frontier_key
from aupwatch.streams.worker.stages import PartitionStore
from aupwatch.streams.worker.state_view import StateView


def view(data: dict[str, Any]) -> StateView:
    return StateView(PartitionStore(data, 0, 1), data)


def test_states_are_read_and_written_in_their_entries() -> None:
    data: dict[str, Any] = {"U\x1fa": [{}, {"n": 1}, 64, 500], frontier_key(0): 7}
    states = view(data)
    assert states.get("U\x1fa") == {"n": 1} and states.get("U\x1fb") is None
    states["U\x1fa"] = {"n": 2}
    states["U\x1fb"] = {"n": 3}
    assert data["U\x1fa"] == [{}, {"n": 2}, 64, 500]  # its written watermark kept
    assert data["U\x1fb"] == [{}, {"n": 3}, PRUNE_MIN]
    assert dict(states) == {"U\x1fa": {"n": 2}, "U\x1fb": {"n": 3}}
    assert "U\x1fa" in states and "U\x1fc" not in states and 7 not in states
    assert states.written("U\x1fa") == 500 and states.written("U\x1fb") == NEVER
    assert states.latest_written() == 500


def test_an_unpersisted_key_goes_at_once_a_persisted_one_stays_empty() -> None:
    data: dict[str, Any] = {"U\x1fa": [{}, {"n": 1}, 64, 500], "U\x1fb": [{}, {"n": 2}, 64]}
    states = view(data)
    del states["U\x1fa"]
    del states["U\x1fb"]
    assert data == {"U\x1fa": [{}, None, 64, 500]} and states.emptied == {"U\x1fa"}
    assert "U\x1fa" not in states and len(states) == 0
    with pytest.raises(KeyError):
        del states["U\x1fa"]


def test_expire_deletes_the_empty_entries_a_frontier_has_passed() -> None:
    data: dict[str, Any] = {
        "U\x1fa": [{}, None, 64, 500],  # restored empty
        "U\x1fb": [{}, None, 64, 900],
        "U\x1fc": [{}, {"n": 1}, 64, 400],
    }
    states = view(data)
    assert states.emptied == {"U\x1fa", "U\x1fb"}
    states["U\x1fb"] = {"n": 2}  # revived: not empty any more
    assert states.expire(600) == ["U\x1fa"]
    assert set(data) == {"U\x1fb", "U\x1fc"} and not states.emptied


def test_ids_remembered_per_key_move_out_of_the_entries() -> None:
    data: dict[str, Any] = {"U\x1fa": [{"e1": 10, "e2": 90}, {"n": 1}, 64, 90]}
    assert view(data).former_ids(50) == {"e1\x1fU\x1fa": 10}
    assert data["U\x1fa"][0] == {}


def test_the_view_counts_the_keys_a_checkpoint_must_write() -> None:
    data: dict[str, Any] = {
        "U\x1fa": [{}, {"n": 1}, 64, 500],
        "U\x1fb": [{}, {"n": 2}, 64],
        "U\x1fe": [{}, None, 64, 400],
    }
    states = view(data)
    assert dict(states.items()) == {"U\x1fa": {"n": 1}, "U\x1fb": {"n": 2}}
    assert states.take_touched() == set()  # a restart's scan writes nothing
    assert states.get("U\x1fc") is None and states.get("U\x1fe") is None
    assert states.take_touched() == set()  # no state handed out
    states.get("U\x1fa")  # a step may change it in place
    states["U\x1fc"] = {"n": 3}
    del states["U\x1fb"]
    assert states.take_touched() == {"U\x1fa", "U\x1fb", "U\x1fc"}
    assert states.take_touched() == set()

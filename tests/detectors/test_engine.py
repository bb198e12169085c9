"""Unit tests of the event-time engine (aupwatch.detectors.engine.Shard) with a fake operator."""

from __future__ import annotations

from typing import Any

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import Output, Shard

S = 1_000_000
CONFIG = DetectorConfig()
HORIZON = CONFIG.dedup_horizon


def item(ts: int, eid: str, key: str = "X|a", rank: int = 2, **payload: Any) -> Any:
    """An engine item; ``payload`` tells the fake operator what to do."""
    return (ts, rank, eid, key, payload, 0)


class Recorder:
    """Fake operator: logs every apply and fire.

    Payload ``timer=T`` sets the key's timer to T, ``then=U`` re-arms it at U when T fires,
    ``drop=True`` returns None (no state to keep) but emits a forward; ``noop=True`` returns
    None and emits nothing.
    """

    prefix = "X"

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def apply(self, key: str, state: dict[str, Any] | None, it: Any, out: Output) -> Any:
        ts, rank, eid, _, payload = it[:5]
        self.log.append(("apply", ts, rank, eid, key))
        if payload.get("drop"):
            out.forwards.append(it)  # an output: the engine must remember the event id
            return None
        if payload.get("noop"):
            return None
        state = dict(state or {"_t": None})
        state["n"] = state.get("n", 0) + 1
        if "timer" in payload:
            state["_t"] = payload["timer"]
            state["then"] = payload.get("then")
        return state

    def fire(self, key: str, state: dict[str, Any], due: int, out: Output) -> Any:
        self.log.append(("fire", due, key))
        assert state["_t"] == due
        state["_t"], state["then"] = state.get("then"), None
        return state

    def applied(self) -> list[str]:
        return [e[3] for e in self.log if e[0] == "apply"]


def shard(
    config: DetectorConfig = CONFIG, store: dict[str, Any] | None = None
) -> tuple[Shard, Recorder]:
    op = Recorder()
    return Shard([op], config, store), op


# ---- ordering ----------------------------------------------------------------------------


def test_items_are_decided_in_ts_rank_event_id_order_up_to_the_watermark() -> None:
    sh, op = shard()
    out = Output()
    sh.add(
        [
            item(30, "e5"),
            item(10, "e9", rank=3),
            item(10, "e2", key="X|b"),
            item(10, "e1", rank=1),
            item(50, "e8"),
        ],
        out,
    )
    sh.add([item(10, "e3"), item(20, "e4", key="X|c"), item(10, "e0", rank=3)], out)
    sh.advance(30, out)
    assert op.applied() == ["e1", "e2", "e3", "e0", "e9", "e4", "e5"]
    assert [e[4] for e in op.log] == ["X|a", "X|b", "X|a", "X|a", "X|a", "X|c", "X|a"]
    sh.advance(49, out)
    assert op.applied()[-1] == "e5"  # e8 at 50 still waits
    sh.advance(50, out)
    assert op.applied()[-1] == "e8" and len(op.applied()) == 8
    assert out.late_items == 0 and out.duplicates == 0


def test_watermark_never_moves_back() -> None:
    sh, op = shard()
    out = Output()
    sh.advance(100, out)
    sh.advance(50, out)
    assert sh.wm == 100
    sh.add([item(60, "e1")], out)  # at or below the watermark: late, applied at once
    assert op.applied() == ["e1"] and out.late_items == 1


# ---- timers ------------------------------------------------------------------------------


def test_timer_fires_before_items_of_equal_ts_and_after_earlier_ones() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(10, "set", timer=40)], out)
    sh.advance(10, out)
    sh.add([item(40, "at"), item(39, "before"), item(41, "after")], out)
    sh.advance(100, out)
    assert [e[0] + ":" + str(e[1]) for e in op.log] == [
        "apply:10",
        "apply:39",
        "fire:40",
        "apply:40",
        "apply:41",
    ]


def test_timer_fires_only_when_the_watermark_reaches_it() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(10, "set", timer=100)], out)
    sh.advance(99, out)
    assert ("fire", 100, "X|a") not in op.log
    sh.advance(100, out)
    assert op.log[-1] == ("fire", 100, "X|a")


def test_timer_rearmed_in_fire_fires_again_and_a_replaced_timer_does_not_fire() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(10, "set", timer=50, then=70), item(20, "other", key="X|b", timer=30)], out)
    sh.add([item(25, "move", key="X|b", timer=60)], out)  # X|b's timer moves from 30 to 60
    sh.advance(100, out)
    fires = [e[1:] for e in op.log if e[0] == "fire"]
    assert fires == [(50, "X|a"), (60, "X|b"), (70, "X|a")]


def test_timer_rearmed_below_the_watermark_fires_in_the_same_advance() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(10, "set", timer=20, then=25), item(30, "late-item")], out)
    sh.advance(40, out)
    assert [e[:2] for e in op.log] == [("apply", 10), ("fire", 20), ("fire", 25), ("apply", 30)]


# ---- late items --------------------------------------------------------------------------


def test_late_items_are_applied_at_once_and_counted() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(100, "e1")], out)
    sh.advance(100, out)
    out = Output()
    sh.add([item(100, "late1"), item(5, "late2"), item(101, "on-time")], out)
    assert op.applied() == ["e1", "late1", "late2"]
    assert out.late_items == 2
    sh.advance(101, out)
    assert op.applied()[-1] == "on-time" and out.late_items == 2


# ---- duplicates --------------------------------------------------------------------------


def test_duplicates_while_pending_are_applied_once() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(10, "e1"), item(10, "e1")], out)
    sh.add([item(10, "e1"), item(10, "e1", key="X|b")], out)  # same id, other key: not a dup
    sh.advance(10, out)
    assert sorted(e[3:] for e in op.log) == [("e1", "X|a"), ("e1", "X|b")]
    assert out.duplicates == 2
    assert sh.store["X|a"][1]["n"] == 1


def test_duplicates_of_decided_items_change_nothing() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(10, "e1", timer=10 * S)], out)
    sh.advance(20, out)
    state_before = dict(sh.store["X|a"][1])
    out = Output()
    sh.add([item(10, "e1", timer=5)], out)  # re-delivery (late) with a different payload
    sh.add([item(10, "e1")], out)
    sh.advance(30, out)
    assert op.applied() == ["e1"]
    assert out.duplicates == 2
    assert sh.store["X|a"][1] == state_before


def test_duplicate_of_a_late_item_is_suppressed() -> None:
    sh, op = shard()
    out = Output()
    sh.advance(100, out)
    sh.add([item(50, "late")], out)
    sh.add([item(50, "late")], out)
    sh.advance(200, out)
    assert op.applied() == ["late"] and out.duplicates == 1


def test_duplicates_recognised_within_dedup_horizon_on_busy_keys() -> None:
    # more ids on one key than the engine keeps without pruning
    sh, op = shard()
    out = Output()
    items = [item(i * S, f"e{i}") for i in range(1, 301)]
    sh.add(items, out)
    sh.advance(300 * S, out)
    sh.add(items, out)  # re-delivered, all within the horizon
    sh.advance(301 * S, out)
    assert len(op.applied()) == 300 and out.duplicates == 300


# ---- tokens ------------------------------------------------------------------------------


def test_token_handed_back_once_all_its_items_are_decided() -> None:
    sh, _ = shard()
    out = Output()
    sh.add([item(10, "a1"), item(20, "a2")], out, token="A")
    sh.add([item(15, "b1")], out, token="B")
    assert out.tokens == []
    sh.advance(12, out)
    assert out.tokens == []
    sh.advance(15, out)
    assert out.tokens == ["B"]
    sh.advance(19, out)
    assert out.tokens == ["B"]
    sh.advance(20, out)
    assert out.tokens == ["B", "A"]


def test_token_of_late_or_no_items_handed_back_at_once() -> None:
    sh, _ = shard()
    out = Output()
    sh.advance(100, out)
    sh.add([item(50, "l1"), item(100, "l2")], out, token="late")
    sh.add([], out, token="empty")
    assert out.tokens == ["late", "empty"]


def test_token_of_duplicates_handed_back() -> None:
    sh, _ = shard()
    out = Output()
    sh.add([item(10, "e1")], out, token="first")
    sh.advance(10, out)
    sh.add([item(11, "e2")], out, token="pending")
    sh.add([item(11, "e2"), item(10, "e1")], out, token="dups")
    sh.advance(11, out)
    assert sorted(out.tokens) == ["dups", "first", "pending"]


# ---- garbage collection ------------------------------------------------------------------


def test_entry_with_no_state_collected_after_dedup_horizon() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(1000 * S, "e1", drop=True)], out)
    sh.advance(1000 * S, out)
    assert "X|a" in sh.store and sh.store["X|a"][1] is None
    sh.advance(1000 * S + HORIZON, out)
    sh.add([item(1000 * S, "e1", drop=True)], out)  # still remembered: a duplicate
    assert op.applied() == ["e1"] and out.duplicates == 1
    sh.advance(1000 * S + HORIZON + 1, out)
    assert "X|a" not in sh.store
    assert "X|a" in sh.take_dirty()
    sh.add([item(1000 * S, "e1", drop=True)], out)  # forgotten: applied again (late)
    assert op.applied() == ["e1", "e1"]


def test_item_that_changes_nothing_leaves_no_entry() -> None:
    sh, op = shard()
    out = Output()
    sh.add([item(1000 * S, "e1", noop=True)], out)
    sh.advance(1000 * S, out)
    assert "X|a" not in sh.store and not sh.timers
    sh.add([item(1000 * S, "e1", noop=True)], out)  # a re-delivery: still nothing to change
    assert op.applied() == ["e1", "e1"] and out.duplicates == 0


def test_collection_waits_for_the_newest_remembered_id() -> None:
    sh, _ = shard()
    out = Output()
    sh.add([item(1000 * S, "e1", drop=True), item(1300 * S, "e2", drop=True)], out)
    sh.advance(1300 * S, out)
    sh.advance(1000 * S + HORIZON + 1, out)
    assert set(sh.store["X|a"][0]) == {"e2"}
    sh.advance(1300 * S + HORIZON, out)
    assert "X|a" in sh.store
    sh.advance(1300 * S + HORIZON + 1, out)
    assert "X|a" not in sh.store


def test_entry_with_state_is_kept() -> None:
    sh, _ = shard()
    out = Output()
    sh.add([item(1000 * S, "e1")], out)
    sh.advance(1000 * S + 10 * HORIZON, out)
    assert sh.store["X|a"][1]["n"] == 1
    assert sh.state_sizes() == {"X": 1}


def test_entry_revived_before_collection_is_kept() -> None:
    sh, _ = shard()
    out = Output()
    sh.add([item(1000 * S, "e1", drop=True), item(1100 * S, "e2")], out)
    sh.advance(1000 * S + 2 * HORIZON, out)
    assert sh.store["X|a"][1]["n"] == 1


# ---- restore -----------------------------------------------------------------------------


def test_rebuild_timers_from_a_restored_store() -> None:
    store = {
        "X|a": [{"e1": 10}, {"_t": 50, "n": 1, "then": None}, 64],
        "X|b": [{"e2": 20}, None, 64],
    }
    sh, op = shard(store=store)
    out = Output()
    sh.advance(50, out)
    assert op.log == [("fire", 50, "X|a")]
    sh.add([item(20, "e2", key="X|b")], out)  # the restored entry still remembers e2
    assert out.duplicates == 1
    sh.advance(20 + HORIZON + 1, out)
    assert "X|b" not in sh.store and "X|a" in sh.store


class Expirer(Recorder):
    """Fake operator whose timer drops the key's state."""

    def fire(self, key: str, state: dict[str, Any], due: int, out: Output) -> Any:
        self.log.append(("fire", due, key))
        return None


def test_state_dropped_by_its_timer_after_the_horizon_goes_at_once() -> None:
    sh = Shard([Expirer()], CONFIG)
    out = Output()
    sh.add([item(1000 * S, "e1", timer=1000 * S + 2 * HORIZON)], out)
    sh.advance(1000 * S + 2 * HORIZON, out)
    assert "X|a" not in sh.store and not sh.timers
    assert "X|a" in sh.take_dirty()


def test_state_dropped_by_its_timer_within_the_horizon_keeps_its_ids() -> None:
    sh = Shard([Expirer()], CONFIG)
    out = Output()
    sh.add([item(1000 * S, "e1", timer=1000 * S + HORIZON)], out)
    sh.advance(1000 * S + HORIZON, out)
    assert sh.store["X|a"][1] is None  # e1 is still remembered
    sh.add([item(1000 * S, "e1", timer=1000 * S + HORIZON)], out)
    assert out.duplicates == 1
    sh.advance(1000 * S + HORIZON + 1, out)
    assert "X|a" not in sh.store

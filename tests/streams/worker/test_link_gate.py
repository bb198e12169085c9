"""The link gate (aupwatch.streams.worker.link_gate): which calls the throttle stage gets."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import NEVER, Output
from aupwatch.detectors.item import KEY, PAYLOAD, TS
from aupwatch.detectors.pipeline import Routing, route, shard_of, stage_operators
from aupwatch.detectors.throttle import is_solo, solo_forward
from aupwatch.detectors.watermarks import SourceClock
from aupwatch.errors import AupwatchError
from aupwatch.schemas.decode import decode_line
from aupwatch.streams.generator.command import GeneratorConfig, generate
from aupwatch.streams.generator.tuned import LINK_FIELDS
from aupwatch.streams.worker.ingest import split
from aupwatch.streams.worker.link_gate import LinkGate, notices_of
from aupwatch.streams.worker.wire import LinkNotice, LinkNotices

SEP = "\x1f"
HOUR = 3_600_000_000
HORIZON = 24 * HOUR
SCOPE = f"T{SEP}NA{SEP}S1{SEP}getOrders"


def call(ts: int, dev: str, seller: str = "S1", op: str = "getOrders") -> Any:
    """A call's own detect item, as ``Links`` hands it on when it links no one."""
    packed = ("c", dev, "app", op, 200, "10.0.0.1", seller, "NA")
    return (ts, 2, f"e{ts}{dev}", [f"L{SEP}10.0.0.1"], packed, 0)


def told(gate: LinkGate, partition: int, wm: int, *links: tuple[str, str, int]) -> None:
    """Partition ``partition`` learns every partition's notices up to ``wm``."""
    notices = [LinkNotices(p, wm, []) for p in range(gate.partitions)]
    notices[0] = LinkNotices(0, wm, [LinkNotice(*link) for link in links])
    gate.learn(partition, notices)


def test_a_call_waits_until_every_partition_told_its_links_up_to_it() -> None:
    gate = LinkGate(3, HORIZON)
    gate.open(0, fresh=True)
    gate.hold(0, call(10 * HOUR, "d1"))
    assert gate.cap(0) == 10 * HOUR
    gate.learn(0, [LinkNotices(0, 11 * HOUR, []), LinkNotices(1, 11 * HOUR, [])])
    assert gate.release(0).forwards == [] and gate.cap(0) == 10 * HOUR  # partition 2 unheard
    gate.learn(0, [LinkNotices(2, 10 * HOUR - 1, [])])
    assert gate.release(0).forwards == [] and gate.cap(0) == 10 * HOUR  # not up to the call
    gate.learn(0, [LinkNotices(2, 10 * HOUR, [])])
    released = gate.release(0)
    assert (released.forwards, released.counts()) == (
        [],
        {"dropped": 1, "linked": 0, "unsure": 0},  # nobody linked: dropped
    )
    assert gate.cap(0) is None


@pytest.mark.parametrize(
    ("link", "kept"),
    [
        (("d1", SCOPE, 9 * HOUR), True),
        (("d1", SCOPE, 10 * HOUR - HORIZON), True),  # a link lives until t + horizon
        (("d1", SCOPE, 10 * HOUR - HORIZON - 1), False),
        (("d1", f"T{SEP}NA{SEP}S2{SEP}getOrders", 9 * HOUR), False),  # another seller
        (("d2", SCOPE, 9 * HOUR), False),  # another developer
    ],
)
def test_a_call_goes_on_when_its_developer_holds_a_live_link_in_its_scope(
    link: tuple[str, str, int], kept: bool
) -> None:
    gate = LinkGate(2, HORIZON)
    gate.open(1, fresh=True)
    item = call(10 * HOUR, "d1")
    gate.hold(1, item)
    told(gate, 1, 10 * HOUR, link)
    released = gate.release(1)
    assert released.forwards == ([solo_forward(item)] if kept else [])
    assert released.counts() == {"dropped": 0 if kept else 1, "linked": int(kept), "unsure": 0}


def test_without_the_start_of_the_topic_links_are_known_only_from_the_first_notices() -> None:
    gate = LinkGate(2, HORIZON)
    gate.open(0, fresh=False)
    told(gate, 0, 5 * HOUR)  # links up to 5 h may have been read by a former owner
    early, later = call(5 * HOUR + HORIZON, "d1"), call(5 * HOUR + HORIZON + 1, "d1")
    gate.hold(0, early)
    gate.hold(0, later)
    told(gate, 0, 6 * HOUR + HORIZON)
    released = gate.release(0)
    assert released.forwards == [solo_forward(early)]  # its window reaches back to 5 h
    assert released.counts() == {"dropped": 1, "linked": 0, "unsure": 1}


def test_calls_go_in_order_and_later_ones_stay_held() -> None:
    gate = LinkGate(1, HORIZON)
    gate.open(0, fresh=True)
    items = [call(t * HOUR, "d1") for t in (30, 31, 32)]
    for item in items:
        gate.hold(0, item)
    told(gate, 0, 31 * HOUR, ("d1", SCOPE, 29 * HOUR))
    assert gate.release(0).forwards == [solo_forward(i) for i in items[:2]]
    assert gate.cap(0) == 32 * HOUR
    assert gate.flush() == {0: [solo_forward(items[2])]}
    assert gate.cap(0) is None and gate.flush() == {}


def test_prune_keeps_what_a_later_call_can_need() -> None:
    gate = LinkGate(1, HORIZON)
    gate.open(0, fresh=True)
    told(gate, 0, 40 * HOUR, ("d1", SCOPE, 15 * HOUR), ("d2", SCOPE, 17 * HOUR))
    gate.prune(0, 40 * HOUR)  # a later call is after 40 h: its window starts after 16 h
    assert gate.known[0].links == {"d2": {SCOPE: 17 * HOUR}}
    gate.hold(0, call(40 * HOUR + 1, "d2"))
    told(gate, 0, 41 * HOUR)
    assert len(gate.release(0).forwards) == 1


def test_tell_sends_links_and_changed_watermarks() -> None:
    gate = LinkGate(2, HORIZON)
    link = LinkNotice("d1", SCOPE, 5)
    assert gate.tell({}, {0: NEVER, 1: 5}, True) == [
        LinkNotices(0, None, []),
        LinkNotices(1, 5, []),
    ]
    assert gate.tell({}, {0: NEVER, 1: 5}, True) == []
    assert gate.tell({1: [link]}, {0: NEVER, 1: 5}, True) == [LinkNotices(1, 5, [link])]
    assert gate.tell({}, {0: 7, 1: 5}, True) == [LinkNotices(0, 7, [])]
    assert len(gate.tell({}, {0: 7, 1: 5}, False)) == 2  # the tick tells all again


def test_notices_name_every_developer_of_a_forward_with_links() -> None:
    linked = (5, 2, "e1", SCOPE, ("d1", 200, "10.0.0.1", ["d2", "d3"]), 0)
    by_agent = (6, 1, "e2|ua", SCOPE, ("d4", None, "agent", ["d5"]), 0)
    alone = (7, 2, "e3", SCOPE, ("d6", 200, "", ()), 0)
    assert notices_of([linked, by_agent, alone, call(8, "d7")]) == [
        LinkNotice("d1", SCOPE, 5),
        LinkNotice("d2", SCOPE, 5),
        LinkNotice("d3", SCOPE, 5),
        LinkNotice("d4", SCOPE, 6),
        LinkNotice("d5", SCOPE, 6),
    ]


# The claim itself, on generated data: four detect partitions whose notices reach each
# other a random number of steps late give the throttle stage what every call gives it.
TUNED = DetectorConfig.from_mapping({"throttle": {"link_fields": list(LINK_FIELDS)}})
PARTS = 4


def _records(seed: int) -> list[Any]:
    out = []
    for line in generate(GeneratorConfig(seed=seed, records=12_000, days=30)).lines:
        try:
            out.append(decode_line(line))
        except AupwatchError:
            continue
    return out


def _run(records: list[Any], gated: bool, rng: random.Random) -> tuple[list[Any], int, int]:
    """Throttle occurrences, calls dropped and calls sent, stepping every 200 records."""
    detect = [
        shard_of("detect", stage_operators("detect", TUNED), TUNED, track_dirty=False)
        for _ in range(PARTS)
    ]
    throttle = shard_of("throttle", stage_operators("throttle", TUNED), TUNED, track_dirty=False)
    routing, clock, gate = Routing.of(TUNED), SourceClock(TUNED.allowed_lateness), None
    if gated:
        gate = LinkGate(PARTS, TUNED.link_horizon)
        for p in range(PARTS):
            gate.open(p, fresh=True)
    in_flight: list[tuple[int, int, LinkNotices]] = []  # (arrives at step, to, notices)
    lanes: dict[tuple[int, int], int] = defaultdict(int)  # (from, to) -> latest arrival
    occurrences: list[Any] = []
    dropped = sent = 0
    for start in range(0, len(records), 200):
        final = start + 200 >= len(records)
        step = start // 200
        pending: dict[int, list[Any]] = defaultdict(list)
        for rec in records[start : start + 200]:
            clock.see(rec.ts)
            item = route(rec, 0, routing)
            if item is not None:
                for p, part in split(item, PARTS):
                    pending[p].append(part)
        wm = clock.max_ts if final else clock.watermark(False)
        wm = NEVER if wm is None else wm
        to_throttle: list[Any] = []
        caps = []
        for p, shard in enumerate(detect):
            out = Output()
            shard.add(pending[p], out)
            shard.advance(wm, out)
            late = set(out.late_outputs)
            for i, fwd in enumerate(out.forwards):
                if is_solo(fwd):
                    if gate is not None and i not in late:
                        gate.hold(p, fwd)
                        continue
                    fwd = solo_forward(fwd)
                to_throttle.append(fwd)
            if gate is not None:
                notices = LinkNotices(p, shard.wm, notices_of(out.forwards))
                for q in range(PARTS):
                    # in order from one partition to another, as on one Kafka partition
                    delay = 0 if final else rng.choice((0, 1, 1, 2, 5))
                    arrives = lanes[p, q] = max(lanes[p, q], step + delay)
                    in_flight.append((arrives, q, notices))
        if gate is not None:
            for arrives, q, notices in in_flight:
                if arrives <= step or final:
                    gate.learn(q, [notices])
            in_flight = [f for f in in_flight if f[0] > step and not final]
            for p in range(PARTS):
                released = gate.release(p)
                to_throttle += released.forwards
                dropped += released.dropped
                cap = gate.cap(p)
                caps.append(wm if cap is None else min(wm, cap - 1))
        sent += sum(1 for f in to_throttle if f[KEY][0] == "T" and not f[PAYLOAD][3])
        out = Output()
        throttle.add(to_throttle, out)
        throttle.advance(min(caps, default=wm), out)
        occurrences += out.occurrences
    assert gate is None or all(gate.cap(p) is None for p in range(PARTS))
    return occurrences, dropped, sent


@pytest.mark.parametrize("seed", [3, 11])
def test_gated_calls_give_the_throttle_stage_what_every_call_gives(seed: int) -> None:
    records = _records(seed)
    every, _, all_calls = _run(records, False, random.Random(seed))
    gated, dropped, sent = _run(records, True, random.Random(seed))
    assert [o[KEY] for o in gated] == [o[KEY] for o in every]
    assert [(o[TS], o[PAYLOAD]) for o in gated] == [(o[TS], o[PAYLOAD]) for o in every]
    # the data must test something: groups linked by user agent are charged for calls
    # from their own addresses, which the gate must let through, and most calls dropped
    agents = [o for o in every if "shared_user_agents" in str(o[PAYLOAD])]
    assert agents, "no group linked by user agent"
    assert 0 < sent < all_calls / 10 and dropped > all_calls / 2


def test_release_into_and_flush_into_tag_forwards_and_count_them() -> None:
    gate = LinkGate(1, HORIZON)
    gate.open(0, fresh=True)
    kept, dropped, held = call(30 * HOUR, "d1"), call(30 * HOUR, "d2"), call(32 * HOUR, "d1")
    for item in (kept, dropped, held):
        gate.hold(0, item)
    told(gate, 0, 31 * HOUR, ("d1", SCOPE, 29 * HOUR))
    parts: dict[int, list[Any]] = defaultdict(list)
    assert gate.release_into(parts, [0], 4) == {"dropped": 1, "linked": 1, "unsure": 0}
    assert gate.flush_into(parts, 4) == 1
    tagged = [w for ws in parts.values() for w in ws]
    assert [w[:6] for w in tagged] == [solo_forward(kept), solo_forward(held)]
    assert {w.source for w in tagged} == {"d0"}

"""Detect items written by versions before packed records (``wire.legacy_detect``).

Such items may still wait on the detect topic when a group is upgraded: one per state key,
each with its step's own fields. ``former_route`` is that version's routing, kept here.
"""

from __future__ import annotations

from typing import Any

import pytest

from aupwatch.detectors import pipeline as pipeline_mod
from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.item import PER_KEY, Item
from aupwatch.detectors.pipeline import EVERY, Pipeline, Routing
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.errors import BadRecord
from aupwatch.schemas.records import KIND_RANK, ApiCall, Authorization, DataAccess, KeyEvent, Record
from aupwatch.streams.generator.command import GeneratorConfig, generate
from aupwatch.streams.worker.wire import legacy_detect
from tests.detectors.support import replay

SEP = "\x1f"


def former_route(rec: Record, origin: int = 0, routing: Routing = EVERY) -> list[Item]:
    """The detect items of a record as versions before packed records made them."""
    ts, eid = rec.ts, rec.event_id
    live = routing.prefixes
    items: list[Item] = []
    payload: tuple[Any, ...]
    if isinstance(rec, ApiCall):
        app, seller, dev, status = rec.app_id, rec.seller_id, rec.developer_id, rec.status
        operation, region, key_id = rec.operation, rec.region, rec.key_id
        # prefixes in key order: D < G < K < L < O < R < U
        if "D" in live:
            items.append((ts, 2, eid, f"D{SEP}{key_id}", ("c", dev, status), origin))
        agent = rec.user_agent
        if agent and "G" in live and agent not in routing.ignored_agents:
            items.append((ts, 2, eid, f"G{SEP}{agent}", (dev, region, seller, operation), origin))
        if "K" in live:
            payload = ("c", dev, app, operation, status, rec.source_ip)
            items.append((ts, 2, eid, f"K{SEP}{key_id}", payload, origin))
        if "L" in live:
            payload = (dev, region, seller, operation, status)
            items.append((ts, 2, eid, f"L{SEP}{rec.source_ip}", payload, origin))
        rids = rec.resource_ids
        if rids and 200 <= status < 300 and "O" in live:
            if len(rids) == 1:  # the usual case, without a comprehension's call
                items.append((ts, 2, eid, f"O{SEP}{app}{SEP}{rids[0]}", ("c", seller), origin))
            else:
                pre = f"O{SEP}{app}{SEP}"
                items += [(ts, 2, eid, pre + rid, ("c", seller), origin) for rid in sorted(rids)]
        if "R" in live:
            key = f"R{SEP}{app}{SEP}{seller}{SEP}{operation}"
            items.append((ts, 2, eid, key, (dev, status), origin))
        if "U" in live:
            payload = ("c", dev, operation, status)
            items.append((ts, 2, eid, f"U{SEP}{app}{SEP}{seller}", payload, origin))
        return items
    if isinstance(rec, Authorization):
        if "U" not in live:
            return items
        key = f"U{SEP}{rec.app_id}{SEP}{rec.seller_id}"
        if rec.action == "grant":
            return [(ts, 1, eid, key, ("g", list(rec.roles), rec.expires_at), origin)]
        return [(ts, 1, eid, key, ("r",), origin)]
    if isinstance(rec, DataAccess):
        if "O" in live:
            payload = ("a", rec.viewer_type, rec.viewer_id, rec.viewer_seller_id, rec.channel)
            pre = f"O{SEP}{rec.app_id}{SEP}"
            items = [(ts, 3, eid, pre + rid, payload, origin) for rid in sorted(rec.resource_ids)]
        if rec.viewer_seller_id is not None and rec.viewer_type == "seller_user" and "U" in live:
            # the viewer's seller must have authorized the app (after the O keys: U > O)
            key = f"U{SEP}{rec.app_id}{SEP}{rec.viewer_seller_id}"
            items.append((ts, 3, eid, key, ("v", rec.viewer_id, rec.channel), origin))
        return items
    assert isinstance(rec, KeyEvent)
    rank = KIND_RANK["key_event"]
    if "D" in live:
        payload = ("k", rec.action, rec.developer_id)
        items.append((ts, rank, eid, f"D{SEP}{rec.key_id}", payload, origin))
    if "K" in live:
        payload = ("k", rec.action, rec.developer_id, rec.app_id)
        items.append((ts, rank, eid, f"K{SEP}{rec.key_id}", payload, origin))
    return items


def _generated(records: int) -> list[Any]:
    out = []
    for line in generate(GeneratorConfig(seed=5, records=records)).lines:
        try:
            out.append(decode_line(line))
        except BadRecord:
            continue  # the generator's malformed lines
    return out


@pytest.fixture(scope="module")
def generated() -> list[Any]:
    return _generated(12_000)


@pytest.mark.parametrize(
    "config",
    [
        DetectorConfig(),
        DetectorConfig.from_mapping({"throttle": {"link_fields": ["source_ip", "user_agent"]}}),
    ],
    ids=["defaults", "user-agent-links"],
)
def test_former_items_give_the_alerts_of_packed_records(
    generated: list[Any], config: DetectorConfig, monkeypatch: Any
) -> None:
    packed, packed_pipe = replay(generated, config, step_every=50)

    def feed(self: Pipeline, rec: Record) -> bool:
        late = self.clock.see(rec.ts)
        self.pending += [legacy_detect(item) for item in former_route(rec, 0, self.routing)]
        self.stats.late += late
        return late

    monkeypatch.setattr(pipeline_mod.Pipeline, "feed", feed)
    former, former_pipe = replay(generated, config, step_every=50)
    assert former == packed
    # former items are remembered per key, so their duplicates are counted per key
    assert former_pipe.stats.duplicates > packed_pipe.stats.duplicates > 0
    former_pipe.stats.duplicates = packed_pipe.stats.duplicates = 0
    assert former_pipe.stats == packed_pipe.stats
    assert {a["detector"] for a in packed.values()} >= {
        "unauthorized_seller_access",
        "throttle_circumvention",
        "cross_seller_disclosure",
        "dormant_key",
        "credential_sharing",
    }


def test_every_former_item_becomes_one_key_with_a_packed_record(generated: list[Any]) -> None:
    for rec in generated[:3000]:
        for item in former_route(rec):
            new = legacy_detect(item)
            assert new[:3] == item[:3] and new[5] == item[5]
            assert new[3] == [PER_KEY, item[3]]
            assert new[4][0] in "cagrk"


def test_an_unknown_former_item_is_refused() -> None:
    from aupwatch.errors import AupwatchError

    with pytest.raises(AupwatchError):
        legacy_detect((1, 2, "e", f"Z{SEP}x", ("c",), 0))


def test_a_record_sent_both_ways_is_applied_once(generated: list[Any], monkeypatch: Any) -> None:
    """An upgrade cut short: former items of a record and its re-read packed item."""
    config = DetectorConfig()
    packed, _ = replay(generated, config, step_every=50)
    original = pipeline_mod.Pipeline.feed

    def feed(self: Pipeline, rec: Record) -> bool:
        former = [legacy_detect(item) for item in former_route(rec, 0, self.routing)]
        late = original(self, rec)
        if len(rec.event_id) % 2:  # half the records: former items first
            self.pending[-1:] = [*former, *self.pending[-1:]]
        else:
            self.pending += former
        return late

    monkeypatch.setattr(pipeline_mod.Pipeline, "feed", feed)
    both, _ = replay(generated, config, step_every=50)
    assert both == packed

"""The engine's and the offline pipeline's shortcuts give exactly what the plain way gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aupwatch.detectors import pipeline as pipeline_mod
from aupwatch.detectors.bulk import _ORDER
from aupwatch.detectors.bulk import sort_ties as _sort_ties
from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import _TS, Item
from aupwatch.detectors.throttle import is_solo, solo_forward
from tests.detectors.support import decode_all, replay
from tests.detectors.test_properties import _call, _t, decoded

# payloads that compare, that do not (dicts), and that only sometimes do (None vs int)
payloads = st.one_of(
    st.tuples(st.sampled_from("cg"), st.integers(0, 2)),
    st.lists(st.one_of(st.none(), st.integers(0, 2)), max_size=2),
    st.dictionaries(st.sampled_from("ab"), st.integers(0, 2), max_size=1),
)
items = st.lists(
    st.tuples(
        st.integers(0, 4),
        st.integers(-1, 3),
        st.sampled_from(["e1", "e2", "e10", "e1\x00"]),
        st.sampled_from(["D\x1fk", "L\x1fa", "O\x1fa\x1fr", "U\x1fa\x1fs"]),
        payloads,
        st.integers(0, 1),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(items)
def test_sort_ties_after_a_time_sort_is_one_stable_full_sort(batch: list[Any]) -> None:
    want = sorted(batch, key=_ORDER)
    got = sorted(batch, key=_TS)
    _sort_ties(got)
    assert [id(i) for i in got] == [id(i) for i in want]  # same objects: stable on ties


def _own_addresses() -> list[Any]:
    """Two accounts linked once over a shared address, then calling from their own.

    The later calls carry no links but reach a scope with state: they must be charged.
    """
    recs = [
        _call(f"s{i}", _t(i), developer_id=f"dev-{i % 2}", seller_id="S7", source_ip="10.0.0.1")
        for i in range(2)
    ]
    recs += [
        _call(
            f"o{i}",
            _t(10 + i),
            developer_id=f"dev-{i % 2}",
            seller_id="S7",
            source_ip=f"10.1.0.{i % 2}",
        )
        for i in range(60)
    ]
    return decode_all(recs)


def _every_forward(forwards: list[Item], throttle: Any) -> list[Item]:
    return [solo_forward(f) if is_solo(f) else f for f in forwards]


def test_dropped_forwards_change_nothing(monkeypatch: Any) -> None:
    config = DetectorConfig.from_mapping({"throttle": {"min_excess_calls": 2}})
    for records, step_every in [
        (decoded(), None),
        (decoded(), 1),
        (decoded(), 7),
        (_own_addresses(), 1),
        (_own_addresses(), 5),
    ]:
        fast, fast_pipe = replay(records, config, step_every=step_every)
        # every forward passes, built from the item that stands for it where one does
        monkeypatch.setattr(pipeline_mod, "_live_forwards", _every_forward)
        plain, plain_pipe = replay(records, config, step_every=step_every)
        monkeypatch.undo()
        assert fast == plain
        assert fast_pipe.stats == plain_pipe.stats
        assert fast_pipe.shards["throttle"].store == plain_pipe.shards["throttle"].store
        assert any(a["detector"] == "throttle_circumvention" for a in fast.values())


def _agents() -> list[Any]:
    """Calls of two accounts that share a user agent (one of them ignored) and no address."""
    recs = [
        _call(
            f"u{i}",
            _t(i),
            developer_id=f"dev-{i % 2}",
            seller_id="S7",
            source_ip=f"10.2.0.{i % 2}",
            user_agent="sdk/1" if i % 3 else "proxy/2",
        )
        for i in range(60)
    ]
    return decode_all(recs)


def test_items_routed_by_config_change_nothing(monkeypatch: Any) -> None:
    throttle = {"min_excess_calls": 2}
    configs = [
        DetectorConfig.from_mapping({"throttle": throttle}),
        DetectorConfig.from_mapping(
            {
                "throttle": {
                    **throttle,
                    "link_fields": ["source_ip", "user_agent"],
                    "link_ignore_values": ["proxy/2"],
                }
            }
        ),
        DetectorConfig.from_mapping(
            {
                "detectors": {
                    "credential_sharing": {"enabled": False},
                    "dormant_key": {"enabled": False},
                }
            }
        ),
        DetectorConfig.from_mapping({"detectors": {"cross_seller_disclosure": {"enabled": False}}}),
    ]
    for config in configs:
        for records in (decoded(), _agents(), decoded() + _agents()):
            fast, fast_pipe = replay(records, config, step_every=3)
            monkeypatch.setattr(pipeline_mod.Routing, "of", lambda config: pipeline_mod.EVERY)
            plain, plain_pipe = replay(records, config, step_every=3)
            monkeypatch.undo()
            assert fast == plain
            # fewer items: fewer duplicate items, the same of everything else
            fast_pipe.stats.duplicates = plain_pipe.stats.duplicates = 0
            assert fast_pipe.stats == plain_pipe.stats


def test_routing_feeds_only_live_steps() -> None:
    (call,) = _agents()[1:2]

    def prefixes(routing: pipeline_mod.Routing = pipeline_mod.EVERY) -> list[str]:
        item = pipeline_mod.route(call, 0, routing)
        assert item is not None
        return [key[0] for key in item[3]]

    assert prefixes(pipeline_mod.Routing.of(DetectorConfig())) == list("DKLRU")
    agents = DetectorConfig.from_mapping({"throttle": {"link_fields": ["user_agent"]}})
    assert prefixes(pipeline_mod.Routing.of(agents)) == list("DGKLRU")
    off = DetectorConfig.from_mapping({"detectors": {"throttle_disrespect": {"enabled": False}}})
    assert "R" not in prefixes(pipeline_mod.Routing.of(off))
    assert prefixes() == list("DGKLRU")

"""Every detect operator's step agrees with its apply (``detectors.steps.apply_step``).

A step does an operator's common cases inline; these tests feed each detect operator of
several configurations the same records both ways, in file order (late records come out
of order), firing due timers alike, and require the same states, outputs and timers.
"""

from __future__ import annotations

import dataclasses
import heapq
import ipaddress
from functools import cache
from typing import Any

import pytest

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import Output
from aupwatch.detectors.item import KEY
from aupwatch.detectors.pipeline import route, stage_operators
from aupwatch.detectors.steps import apply_step
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.errors import BadRecord
from aupwatch.streams.generator.command import GeneratorConfig, generate
from tests.detectors.test_properties import decoded

S = 1_000_000
DAY = 86_400 * S
BASE = DetectorConfig()
CONFIGS = {
    "default": BASE,
    # short horizons: dormancy, warnings, forgetting and expiring owners all happen
    "short": dataclasses.replace(
        BASE,
        dormant_after=3 * DAY,
        warn_after=DAY,
        ownership_retention=DAY,
        ownership_wait=60 * S,
        disrespect_window=120 * S,
        min_throttled=2,
        min_share=0.2,
        link_horizon=3600 * S,
    ),
    "retained": dataclasses.replace(
        BASE,
        dormant_after=3 * DAY,
        warn_after=DAY,
        key_retention=4 * DAY,
        authorization_retention=2 * DAY,
    ),
    "plain_forever": dataclasses.replace(
        BASE, ownership_wait=0, ownership_retention=0, warn_after=0
    ),
    # addresses in half the IPv4 space link no one: not the plain case of Links
    "agents_and_ignored": dataclasses.replace(
        BASE,
        link_fields=("source_ip", "user_agent"),
        link_ignore=(ipaddress.ip_network("0.0.0.0/1"),),
    ),
    "agents_only": dataclasses.replace(BASE, link_fields=("user_agent",)),
    "disclosure_off": dataclasses.replace(BASE, disabled=frozenset({"cross_seller_disclosure"})),
}


@cache
def _items() -> list[Any]:
    """Detect items of the property scenario, then of a dense generated file (shuffled)."""
    records = list(decoded())
    gen = generate(GeneratorConfig(seed=11, records=8000, days=30, developers=10, sellers=40))
    for line in gen.lines:
        try:
            records.append(decode_line(line))
        except BadRecord:
            continue
    items = [route(rec) for rec in records]
    return [item for item in items if item is not None]


def _outputs(out: Output) -> tuple[Any, ...]:
    return (out.forwards, out.occurrences, out.unowned)


def _run(
    op: Any, items: list[Any], by_step: dict[str, Any], by_apply: dict[str, Any]
) -> dict[str, int]:
    """Feeds the items to ``op`` both ways; returns how often each kind of thing happened."""
    timers = [(s["_t"], k) for k, s in by_step.items() if s.get("_t") is not None]
    heapq.heapify(timers)
    seen = {"keys": 0, "timers": 0, "outputs": 0, "fired": 0, "gone": 0}

    def fire_until(ts: int) -> None:
        while timers and timers[0][0] <= ts:
            due, key = heapq.heappop(timers)
            states = [m.get(key) for m in (by_step, by_apply)]
            if states[0] is None or states[0].get("_t") != due:
                assert states[1] is None or states[1].get("_t") != due
                continue
            news = [op.fire(key, state, due, Output()) for state in states]
            for m, new in zip((by_step, by_apply), news, strict=True):
                if new is None:
                    del m[key]
                else:
                    m[key] = new
            seen["fired"] += 1
            if news[0] is not None and news[0].get("_t") not in (None, due):
                heapq.heappush(timers, (news[0]["_t"], key))

    for item in items:
        fire_until(item[0] - 1)
        for key in item[KEY]:
            if key[0] != op.prefix:
                continue
            out_step, out_apply = Output(), Output()
            due = op.step(key, by_step, item, out_step)
            assert due == apply_step(op, key, by_apply, by_apply.get(key), item, out_apply), key
            assert by_step.get(key) == by_apply.get(key), key
            assert _outputs(out_step) == _outputs(out_apply), key
            seen["keys"] += 1
            seen["outputs"] += bool(out_step.forwards or out_step.occurrences)
            seen["gone"] += key not in by_step
            if due is not None:
                seen["timers"] += 1
                heapq.heappush(timers, (due, key))
    assert by_step == by_apply
    return seen


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_detect_step_agrees_with_its_apply(name: str) -> None:
    ops = stage_operators("detect", CONFIGS[name])
    seen = {op.prefix: _run(op, _items(), {}, {}) for op in ops}
    for prefix, counts in seen.items():
        assert counts["keys"] > 0 or prefix == "G", (prefix, counts)
    assert seen["D"]["timers"] and seen["R"]["timers"]
    assert seen["O"]["timers"] or name == "plain_forever"  # no retention, no wait
    assert seen["U"]["outputs"] and seen["K"]["outputs"] and seen["L"]["outputs"]
    if name == "short":  # timers fire, and states go with them
        assert all(seen[p]["fired"] for p in "DLOR"), seen
        assert seen["D"]["outputs"] and seen["R"]["outputs"] and seen["O"]["outputs"]
    if name == "retained":
        assert all(seen[p]["fired"] for p in "DKU"), seen


@pytest.mark.parametrize(
    ("before", "after"), [("plain_forever", "short"), ("default", "plain_forever")]
)
def test_steps_agree_on_states_written_under_other_settings(before: str, after: str) -> None:
    # a restart with changed settings finds states the new ones would not have made
    items = _items()
    half = len(items) // 2
    for old, new in zip(
        stage_operators("detect", CONFIGS[before]),
        stage_operators("detect", CONFIGS[after]),
        strict=True,
    ):
        by_step: dict[str, Any] = {}
        by_apply: dict[str, Any] = {}
        _run(old, items[:half], by_step, by_apply)
        assert _run(new, items[half:], by_step, by_apply)["keys"] > 0 or new.prefix == "G"

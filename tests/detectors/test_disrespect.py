"""The retry scope's state: its list of throttled calls comes with the first of them."""

from __future__ import annotations

import dataclasses
from typing import Any

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.declare import SEP
from aupwatch.detectors.disrespect import Disrespect
from aupwatch.detectors.engine import Item, Output
from tests.detectors.support import call_item

CONFIG = dataclasses.replace(DetectorConfig(), min_throttled=2, min_share=0.5)
KEY = f"R{SEP}app-1{SEP}S1{SEP}getOrders"
S = 1_000_000


def _call(ts: int, status: int) -> Item:
    return call_item(KEY, ts, status=status)


def _run(state: dict[str, Any], calls: list[Item]) -> tuple[list[Any], dict[str, Any]]:
    op, out, states = Disrespect(CONFIG), Output(), {KEY: state}
    for call in calls:
        op.step(KEY, states, call, out)
    return out.occurrences, states[KEY]


def test_a_scope_without_throttled_calls_holds_no_list_of_them() -> None:
    op, states = Disrespect(CONFIG), {}
    assert op.step(KEY, states, _call(S, 200), Output()) == S + op.horizon
    assert states[KEY] == {"c": [S], "_t": S + op.horizon}
    op.step(KEY, states, _call(2 * S, 429), Output())
    assert states[KEY]["q"] == [2 * S]


def test_a_format_3_scope_with_its_empty_list_judges_the_same() -> None:
    calls = [_call(10 * S, 200), _call(11 * S, 429), _call(12 * S, 429), _call(13 * S, 429)]
    calls.append(_call(10 * S + 3 * CONFIG.disrespect_window, 200))  # trims the window
    older = _run({"c": [5 * S], "q": [], "_t": 5 * S + 1}, calls)
    newer = _run({"c": [5 * S], "_t": 5 * S + 1}, calls)
    assert older == newer and len(older[0]) == 2  # the 2nd and 3rd 429 are retry storms
    assert older[1]["c"] == [calls[-1][0]] and older[1]["q"] == []

"""The ownership step's two shapes of state: one owner kept flat, several as a map."""

from __future__ import annotations

from typing import Any

import pytest

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.declare import SEP
from aupwatch.detectors.disclosure import Disclosure, owners_of
from aupwatch.detectors.engine import Item, Output
from tests.detectors.support import call_item

CONFIG = DetectorConfig()
KEY = f"O{SEP}app-1{SEP}r-1"
MIN = 60_000_000


def _call(ts: int, seller: str) -> Item:
    return call_item(KEY, ts, seller=seller)


def _access(ts: int, viewer_type: str, viewer: str, viewer_seller: str | None) -> Item:
    return (ts, 3, f"a{ts}", KEY, ("a", viewer_type, viewer, viewer_seller, "ui"), 0)


def test_a_resource_with_one_owner_keeps_it_flat_until_a_second_one() -> None:
    op, out = Disclosure(CONFIG), Output()
    state = op.apply(KEY, None, _call(MIN, "S1"), out)
    assert state == {"own": "S1", "at": MIN, "_t": MIN + CONFIG.ownership_retention + 1}
    state = op.apply(KEY, state, _call(2 * MIN, "S1"), out)
    assert state is not None and (state["own"], state["at"]) == ("S1", 2 * MIN)
    assert state["_t"] == MIN + CONFIG.ownership_retention + 1  # the lazy timer stays
    state = op.apply(KEY, state, _call(3 * MIN, "S2"), out)
    assert state == {"own": {"S1": 2 * MIN, "S2": 3 * MIN}, "_t": state["_t"]}
    assert not out.occurrences and not out.forwards


def _run(state: dict[str, Any], steps: list[Item | int]) -> list[Any]:
    """Applies items and fires timers (an int: the due time); records what each gave."""
    op, seen = Disclosure(CONFIG), []
    current: dict[str, Any] | None = state
    for step in steps:
        out = Output()
        if isinstance(step, int):
            assert current is not None
            current = op.fire(KEY, current, step, out)
        else:
            current = op.apply(KEY, current, step, out)
        owners = None if current is None else dict(owners_of(current))
        seen.append((out.occurrences, out.forwards, out.unowned, owners, (current or {}).get("_t")))
    return seen


RETAIN = CONFIG.ownership_retention
# what happens to an ownership of S1 since MIN: steps, then the occurrences and forwards
# they give in all and the owners left at the end (None: the state is gone)
STORIES: dict[str, tuple[list[Item | int], int, int, dict[str, int] | None]] = {
    "other_seller_and_internal_user": (
        [
            _access(2 * MIN, "seller_user", "u-1", "S2"),
            _access(3 * MIN, "internal_user", "i-1", None),
            _access(4 * MIN, "seller_user", "u-2", "S1"),  # the owner's own user: nothing
            _access(5 * MIN, "external", "x-1", None),
        ],
        2,
        1,
        {"S1": MIN},
    ),
    # the access after retention waits for an owner
    "retention_ends_it": (
        [MIN + RETAIN + 1, _access(MIN + RETAIN + 2, "external", "x", None)],
        0,
        0,
        {},
    ),
    "a_renewed_owner_stays": (
        [_call(2 * MIN, "S1"), MIN + RETAIN + 1, 2 * MIN + RETAIN + 1],
        0,
        0,
        None,
    ),
    "a_second_owner": (
        [
            _call(2 * MIN, "S2"),
            _access(3 * MIN, "seller_user", "u-3", "S3"),  # one for each owner
            MIN + RETAIN + 1,  # S1 goes, S2 stays
            _access(MIN + RETAIN + 2, "seller_user", "u-1", "S1"),
            2 * MIN + RETAIN + 1,
        ],
        3,
        0,
        None,
    ),
}


@pytest.mark.parametrize("story", sorted(STORIES))
def test_format_3_state_with_one_owner_reads_as_the_flat_one(story: str) -> None:
    # state format 3 kept every owner in a map: a restored one must judge the same
    flat = {"own": "S1", "at": MIN, "_t": MIN + RETAIN + 1}
    mapped = {"own": {"S1": MIN}, "_t": MIN + RETAIN + 1}
    steps, occurrences, forwards, owners = STORIES[story]
    seen = _run(flat, steps)
    assert seen == _run(mapped, steps)
    assert sum(len(s[0]) for s in seen) == occurrences
    assert sum(len(s[1]) for s in seen) == forwards
    assert seen[-1][3] == owners

"""Opt-in forgetting of states the rules keep forever (a retention after the latest activity).

A retained state holds ``l``, the event time of its key's latest item, and a lazy timer
``_t``: an item only moves ``l``, and a timer that fires early re-arms itself at
``l + retention + 1``. The state is kept for an item at exactly ``l + retention`` and
forgotten after it, as ``disclosure.ownership_retention`` keeps owners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aupwatch.detectors.engine import State


def touch(state: State, ts: int, retention: int) -> State:
    """Records activity at ``ts`` and arms the forgetting timer if no timer is armed."""
    last = state.get("l")
    if last is None or ts > last:
        state["l"] = last = ts
    if state.get("_t") is None:
        state["_t"] = last + retention + 1
    return state


def expired(state: State, due: int, retention: int, last: int | None = None) -> bool:
    """Whether a timer due at ``due`` finds the state's retention over.

    Args:
        state: A retained state.
        due: The firing timer's time.
        retention: The retention (microseconds, > 0).
        last: Its latest activity when ``l`` is not set yet (a state stored before the
            retention was turned on).
    """
    latest = state.get("l", last)
    return latest is not None and latest + retention < due


def rearm(state: State, retention: int, last: int | None = None) -> State:
    """Keeps an earlier timer, else arms the forgetting timer from the latest activity."""
    latest = state.get("l", last)
    if latest is not None:
        due = latest + retention + 1
        if state.get("_t") is None or state["_t"] > due:
            state["_t"] = due
    return state


def applied(old: State | None, new: State | None, ts: int, retention: int) -> State | None:
    """The state after an item at ``ts``: a replaced state keeps the clock, then ``touch``."""
    if new is None:
        return None
    if old is not None and new is not old:  # a new owner or authorization: keep the clock
        new["l"], new["_t"] = old.get("l"), old.get("_t")
    return touch(new, ts, retention)


def fired(state: State, due: int, retention: int) -> State | None:
    """Forgets the state when its retention is over, else re-arms at its latest activity."""
    if expired(state, due, retention):
        return None
    state["_t"] = None
    return touch(state, state["l"], retention)

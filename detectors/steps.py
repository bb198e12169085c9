"""Detect-stage operators keep their own states: the step of one record for one key.

A detect operator's ``step(key, states, item, out)`` applies a record to its key in
``states`` (the operator's map: a dict offline, a worker's state view) itself: it reads
the key's state, stores the new one or deletes it, and returns the time of a timer it
armed (a ``_t`` it changed to a new time), else None; the detect shard then queues that
timer. An operator's common cases do this inline, without the generic lookup, store
and before-and-after reads of ``_t`` that ``apply`` needs around it (about 35 bytecodes
a key, 2 % of replay's CPU: docs/performance.md); its other cases, and operators with no
such step, go through ``apply`` with ``apply_step``, which is the definition a step must
agree with (``tests/detectors/test_steps.py`` holds every detect operator to it).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aupwatch.detectors.engine import Item, Output, State

States = MutableMapping[str, Any]


class Applies(Protocol):
    """What ``apply_step`` needs of an operator."""

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """As ``engine.Operator.apply``."""


class Steps(Protocol):
    """What ``apply_by_step`` needs of an operator."""

    def step(self, key: str, states: States, item: Item, out: Output) -> int | None:
        """As in this module's docstring."""


def apply_step(
    op: Applies, key: str, states: States, state: State | None, item: Item, out: Output
) -> int | None:
    """A step through ``op.apply``: stores what it returns, and returns a timer it armed.

    Args:
        op: The operator.
        key: The state key.
        states: The operator's map of states.
        state: The key's state in ``states`` (None: it has none).
        item: The record's item.
        out: Collects what the record produces.
    """
    old_t = None if state is None else state.get("_t")
    new = op.apply(key, state, item, out)
    if new is None:
        if state is not None:
            del states[key]
        return None
    if new is not state:
        states[key] = new
    t = new.get("_t")
    return None if t == old_t else t


def step_by_apply(op: Applies, key: str, states: States, item: Item, out: Output) -> int | None:
    """``step`` of an operator whose every case goes through ``apply`` (a class attribute)."""
    return apply_step(op, key, states, states.get(key), item, out)


def apply_by_step(
    op: Steps, key: str, state: State | None, item: Item, out: Output
) -> State | None:
    """``apply`` of an operator whose logic is its step (a class attribute): on a one-key map."""
    states: dict[str, Any] = {} if state is None else {key: state}
    op.step(key, states, item, out)
    return states.get(key)

"""The unit of work of the engine: one item per piece of state a record touches."""

from __future__ import annotations

from typing import Any, NamedTuple


class Item(NamedTuple):
    """One input of an operator; items are decided in (ts, rank, event_id, key) order.

    Attributes:
        ts: Event time, microseconds.
        rank: Order among items of one time (-1: a timer's own item, which has no event).
        event_id: Id of the source event, by which a key drops re-deliveries.
        key: State key, starting with the operator's one-letter prefix.
        payload: What the operator needs of the record (a tuple; a list once decoded).
        origin: Wall-clock ms the source record was appended to Kafka (0 offline).
    """

    ts: int
    rank: int
    event_id: str
    key: str
    payload: Any
    origin: int

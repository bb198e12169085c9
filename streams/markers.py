"""In-band input markers: what a replay producer promises, written into the input topic.

``aupwatch replay --to-kafka`` writes, into every input partition, a *begin* marker
before its first record (acknowledged before any record is sent), a *mark* with the
largest event time sent so far every few thousand records and every second while it
paces, and an *end* marker after its last record. A marker is a message with the header
``aupwatch.marker`` and a JSON value; the worker reads it as a promise, never as a log
record. Because a marker sits in the partition after every record sent before it, the
group decides from it exactly as replay decides from the file, whatever the workers'
timing (docs/semantics.md, "Consumer groups").
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

HEADER = "aupwatch.marker"
BEGIN, MARK, END = "begin", "mark", "end"


class Marker(NamedTuple):
    """One producer's promise about the records it sends after it.

    Attributes:
        kind: ``begin``, ``mark`` or ``end``.
        producer: Id of the producer run (one ``replay --to-kafka``).
        max_ts: Largest event time (microseconds) sent before it, or None.
    """

    kind: str
    producer: str
    max_ts: int | None


def encode(marker: Marker) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of a marker message."""
    value = orjson.dumps(
        {"kind": marker.kind, "producer": marker.producer, "max_ts": marker.max_ts}
    )
    return value, [(HEADER, b"1")]


def decode(headers: Any, value: bytes | None) -> Marker | None:
    """The marker a message carries, or None for a log record.

    Args:
        headers: The message headers (a list of pairs or a mapping; None when absent).
        value: The message value.

    Returns:
        The marker; None when the message has no marker header.
    """
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, dict) else headers
    if not any(k == HEADER for k, _ in pairs):
        return None
    try:
        obj = orjson.loads(value or b"")
        kind, producer, max_ts = obj["kind"], str(obj["producer"]), obj.get("max_ts")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None  # not a marker after all: decoded (and dead-lettered) as a record
    if kind not in (BEGIN, MARK, END) or not (max_ts is None or isinstance(max_ts, int)):
        return None
    return Marker(kind, producer, max_ts)

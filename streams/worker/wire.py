"""The format of the internal topics: items and markers on their way between stages.

A message is the JSON object ``{"m": [marker, ...], "x": [wire item, ...]}``: markers
(``Marker``) are arrays ``[source, wm, idle]``, with ``end`` for an input partition's, and
wire items (``WireItem``) are arrays of an item's six fields, its source and its sequence.
The markers of a message follow the items it carries. Detect partitions also tell each
other the links they found (``LinkNotices``, under ``"n"``, on the detect topic only);
versions before them ignore that field. These bytes are what workers of
different versions exchange during a rolling upgrade: keep them as they are, and keep
reading what older versions wrote (``legacy_detect``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
import orjson

from aupwatch.detectors.item import EVENT_ID, KEY, ORIGIN, PAYLOAD, PER_KEY, RANK, TS, Item
from aupwatch.errors import AupwatchError

# Where a wire item comes from, and what makes a second copy recognisable: an input
# record's (offset, line, index in its items), or a stage output's 0, or -1 when a late
# item made it.
Seq = int | tuple[int, int, int]


class Marker(NamedTuple):
    """An upstream partition's promise: every item up to ``wm`` has been sent.

    Attributes:
        source: The upstream partition: ``i<n>`` input, ``d<n>`` detect, ``t<n>`` throttle.
        wm: Its watermark, microseconds (None: nothing promised yet).
        idle: Whether it has nothing more for now.
        end: An input partition's end offset it was read to when idle (stages send none).
    """

    source: str
    wm: int | None
    idle: bool
    end: int | None = None


class WireItem(NamedTuple):
    """An item on an internal topic: the fields of an ``Item``, then where it comes from.

    Attributes:
        ts: Event time, microseconds.
        rank: Order among items of one time.
        event_id: Id of the source event.
        key: State key, which picks the partition; on the detect topic the list of a
            record's keys that one partition owns.
        payload: What the operator needs (a list once decoded); on the detect topic the
            packed record (``aupwatch.detectors.item``).
        origin: Wall-clock ms the source record was appended to Kafka.
        source: The upstream partition that sent it (``i<n>``, ``d<n>``, ``t<n>``).
        seq: What tells a second copy from it (see ``Seq``).
    """

    ts: int
    rank: int
    event_id: str
    key: str | list[str]
    payload: Any
    origin: int
    source: str
    seq: Seq


class LinkNotice(NamedTuple):
    """A link a detect partition found: ``developer`` holds it in ``scope`` from ``ts``.

    Attributes:
        developer: One of the linked developers.
        scope: The ``SharedQuota`` key of the call that linked them.
        ts: The call's event time, microseconds.
    """

    developer: str
    scope: str
    ts: int


class LinkNotices(NamedTuple):
    """A detect partition's links, then its promise: every link up to ``wm`` is told.

    Attributes:
        source: The detect partition that found them.
        wm: Its watermark after deciding them (None: nothing decided yet).
        links: The links found since its last notices.
    """

    source: int
    wm: int | None
    links: list[LinkNotice]


class Hop(msgspec.Struct, rename={"marks": "m", "items": "x", "notices": "n"}):
    """One decoded internal message.

    Attributes:
        marks: The markers, which follow the items.
        items: The items.
        notices: Detect partitions' links (``LinkNotices``; the detect topic only).
    """

    marks: list[Marker]
    items: list[WireItem]
    notices: list[LinkNotices] = []


_DECODER = msgspec.json.Decoder(Hop)
_new = tuple.__new__


def tag(item: Item, source: str, seq: Seq) -> WireItem:
    """The wire item of an item sent by ``source``."""
    return _new(WireItem, (*item, source, seq))


def to_item(wire: WireItem) -> Item:
    """The engine's item of a wire item: its first six fields, as a plain tuple."""
    return wire[:6]


def legacy_detect(item: Item) -> Item:
    """A detect item as versions before packed records sent it, in today's form.

    Those sent one item per state key, with that step's own fields; it becomes an item of
    that one key whose packed record has those fields (the step reads no other), marked
    ``PER_KEY`` so that its id is remembered for that key alone.

    Args:
        item: A detect-topic item whose key is a string.
    """
    key, old = item[KEY], item[PAYLOAD]
    assert isinstance(key, str)
    prefix, tag = key[0], old[0]
    packed: tuple[Any, ...]
    if prefix in "DKOU" and tag in ("k", "g", "r", "a"):
        packed = (*old, None) if prefix == "D" else tuple(old)  # D's key event lacked the app
    elif prefix == "D":
        packed = _call(old[1], None, None, old[2])
    elif prefix == "K":
        packed = (*old, None, None)
    elif prefix == "O":
        packed = _call(None, None, None, None, seller=old[1])
    elif prefix == "U" and tag == "v":
        packed = ("a", "seller_user", old[1], None, old[2])
    elif prefix == "U":
        packed = _call(old[1], None, old[2], old[3])
    elif prefix == "R":
        packed = _call(old[0], None, None, old[1])
    elif prefix == "L":
        packed = _call(old[0], None, old[3], old[4], old[2], old[1], ip=key[2:])
    elif prefix == "G":
        packed = _call(old[0], None, old[3], None, seller=old[2], region=old[1])
    else:
        raise AupwatchError(f"unreadable detect item of an older version: {key!r}")
    # its id is remembered per key, as that version did (``RecordShard``)
    return (item[TS], item[RANK], item[EVENT_ID], [PER_KEY, key], packed, item[ORIGIN])


def _call(
    dev: Any,
    app: Any,
    op: Any,
    status: Any,
    seller: Any = None,
    region: Any = None,
    ip: Any = None,
) -> tuple[Any, ...]:
    # a former L item held its address in its key; ``Links`` reads it from the record
    return ("c", dev, app, op, status, ip, seller, region)


def encode(items: list[Any], marks: list[Any], chunk: int) -> list[bytes]:
    """Encodes items for one partition as messages of at most ``chunk`` items.

    The markers ride on the last message, so they always follow the items they cover.

    Args:
        items: ``WireItem``s, or arrays in its field order.
        marks: ``Marker``s, or arrays in its field order (a stage's without ``end``).
        chunk: Items per message.
    """
    if not items:
        return [_dumps({"m": marks, "x": []})]
    out = []
    for start in range(0, len(items), chunk):
        last = start + chunk >= len(items)
        out.append(_dumps({"m": marks if last else [], "x": items[start : start + chunk]}))
    return out


def encode_notices(notices: list[LinkNotices]) -> bytes:
    """The message that carries detect partitions' ``LinkNotices`` (no items, no markers)."""
    return _dumps({"m": [], "x": [], "n": notices})


def _dumps(message: dict[str, Any]) -> bytes:
    # orjson, not msgspec: they format some floats differently and the bytes must not change;
    # ``default=tuple`` writes named tuples as arrays at C speed
    return orjson.dumps(message, default=tuple)


def decode(value: bytes) -> Hop:
    """Decodes one internal message.

    Raises:
        AupwatchError: The message is not in this format.
    """
    try:
        return _DECODER.decode(value)
    except msgspec.DecodeError as exc:
        raise AupwatchError(f"unreadable internal message: {exc}", size=len(value)) from exc

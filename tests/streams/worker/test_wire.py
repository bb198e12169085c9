"""The internal topics' codec (aupwatch.streams.worker.wire): same bytes as before it had
names, and a round trip through them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aupwatch.detectors.item import ORIGIN, PAYLOAD
from aupwatch.errors import AupwatchError
from aupwatch.streams.worker.wire import Hop, Marker, WireItem, decode, encode, tag, to_item

SEP = "\x1f"
CALL = (1_700_000_000_000_001, 2, "evt-1", f"L{SEP}10.0.0.1", ("dev-1", "eu", "S1", "op", 2), 5)
OCCURRENCE = (
    1_700_000_000_000_002,
    -1,
    "due\x1f7",
    f"A{SEP}dormant_key{SEP}dormant{SEP}" + '{"key_id":"k-é"}',
    {"f": 1, "e": {"share": 0.333, "big": 1e20, "tiny": 1.5e-7}, "c": {}, "u": {}, "ev": None},
    0,
)
INPUT_MARK = ["i3", 1_700_000_000_000_000, True, 4711]
STAGE_MARK = ["d0", None, False]


def former(items: list[Any], marks: list[list[Any]], chunk: int) -> list[bytes]:
    """The former ``stages.encode_batches``, fed the plain tuples and lists it was sent."""
    if not items:
        return [orjson.dumps({"m": marks, "x": []})]
    out = []
    for start in range(0, len(items), chunk):
        last = start + chunk >= len(items)
        out.append(orjson.dumps({"m": marks if last else [], "x": items[start : start + chunk]}))
    return out


def test_bytes_of_a_sample_are_pinned() -> None:
    assert encode([tag(CALL, "i3", (12, 1, 0))], [STAGE_MARK], 5) == [
        b'{"m":[["d0",null,false]],"x":[[1700000000000001,2,"evt-1","L\\u001f10.0.0.1",'
        b'["dev-1","eu","S1","op",2],5,"i3",[12,1,0]]]}'
    ]


def test_bytes_equal_the_former_plain_encoding() -> None:
    tagged = [tag(CALL, "i3", (12, 1, 0)), tag(OCCURRENCE, "t1", -1), tag(CALL, "d0", 0)]
    plain = [(*CALL, "i3", (12, 1, 0)), (*OCCURRENCE, "t1", -1), (*CALL, "d0", 0)]
    marks = [INPUT_MARK, STAGE_MARK]
    for chunk in (1, 2, 3, 2000):
        got = encode(tagged, marks, chunk)
        assert got == former(plain, marks, chunk)
        assert len(got) == -(-len(tagged) // chunk)
    assert encode([], marks, 2) == former([], marks, 2)
    assert encode([], [], 2) == [b'{"m":[],"x":[]}']


def test_named_markers_encode_as_the_arrays_they_name() -> None:
    named = [Marker(*INPUT_MARK), Marker("d0", None, False, None)]
    assert encode([], named[:1], 5) == encode([], [INPUT_MARK], 5)
    assert orjson.loads(encode([], named[1:], 5)[0])["m"] == [["d0", None, False, None]]


def test_round_trip_gives_named_shapes_with_the_same_values() -> None:
    tagged = [tag(CALL, "i3", (12, 1, 0)), tag(OCCURRENCE, "t1", -1)]
    (value,) = encode(tagged, [INPUT_MARK, STAGE_MARK], 10)
    hop = decode(value)
    assert isinstance(hop, Hop)
    assert hop.marks == [Marker("i3", 1_700_000_000_000_000, True, 4711), Marker("d0", None, False)]
    assert all(type(m) is Marker for m in hop.marks)
    assert all(type(x) is WireItem for x in hop.items)
    first, second = hop.items
    assert (first.source, first.seq) == ("i3", (12, 1, 0))
    assert (second.source, second.seq) == ("t1", -1)
    # payloads come back as JSON gives them: tuples as lists
    assert to_item(first) == (*CALL[:4], list(CALL[PAYLOAD]), CALL[ORIGIN])
    assert type(to_item(first)) is tuple  # the engine's fast paths want exact tuples
    assert to_item(second) == OCCURRENCE
    assert encode(hop.items, hop.marks[:1], 10) == encode(tagged, [INPUT_MARK], 10)


def test_decoded_values_equal_the_plain_json_reading() -> None:
    (value,) = encode([tag(OCCURRENCE, "t1", 0), tag(CALL, "i0", (1, 2, 3))], [STAGE_MARK], 9)
    plain = orjson.loads(value)
    hop = decode(value)
    assert [list(m) for m in hop.marks] == [[*m, None][:4] for m in plain["m"]]
    assert [[*x[:7], list(x.seq) if isinstance(x.seq, tuple) else x.seq] for x in hop.items] == [
        list(x) for x in plain["x"]
    ]


@pytest.mark.parametrize(
    "value",
    [b"", b"{", b'{"m": [], "x": [[1, 2, "e"]]}', b'{"m": [["d0", "late", false]], "x": []}'],
)
def test_an_unreadable_message_is_an_aupwatch_error(value: bytes) -> None:
    with pytest.raises(AupwatchError, match="unreadable internal message"):
        decode(value)


def test_a_detect_item_keeps_its_keys_and_packed_record() -> None:
    packed = ("c", "dev-1", "app-1", "getOrders", 200, "10.0.0.1", "S1", "NA")
    keys = [f"D{SEP}k-1", f"L{SEP}10.0.0.1"]
    unit = (1_700_000_000_000_001, 2, "evt-1", keys, packed, 5)
    (value,) = encode([tag(unit, "i0", (7, 1, 0))], [INPUT_MARK], 10)
    (got,) = decode(value).items
    assert got.key == keys and (got.source, got.seq) == ("i0", (7, 1, 0))
    assert to_item(got) == (*unit[:4], list(packed), 5)

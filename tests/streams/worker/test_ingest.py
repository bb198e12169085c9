"""Splitting a record's detect item among the detect partitions (``ingest.split``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aupwatch.streams.worker.ingest import split
from aupwatch.streams.worker.keys import partition_of

PACKED = ("c", "dev-1", "app-1", "getOrders", 200, "10.0.0.1", "S1", "NA")


@given(
    keys=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=9, unique=True),
    partitions=st.integers(min_value=1, max_value=7),
)
def test_each_partition_gets_the_keys_it_owns_in_order(keys: list[str], partitions: int) -> None:
    keys.sort()
    item = (5, 2, "e1", keys, PACKED, 9)
    parts = split(item, partitions)
    assert len({p for p, _ in parts}) == len(parts)
    for part, unit in parts:
        assert unit[:3] == item[:3] and unit[4:] == item[4:]
        assert unit[3] == [k for k in keys if partition_of(k, partitions) == part]
    assert sorted(k for _, unit in parts for k in unit[3]) == keys


def test_one_partition_or_one_owner_sends_the_item_itself() -> None:
    item = (5, 2, "e1", ["D\x1fk1", "K\x1fk1"], PACKED, 9)
    assert split(item, 1) == [(0, item)]
    (part, unit), *rest = split((5, 2, "e1", ["D\x1fk1"], PACKED, 9), 4)
    assert not rest and part == partition_of("D\x1fk1", 4) and unit[3] == ["D\x1fk1"]

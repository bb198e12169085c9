"""Orderings and pruning the engine applies to whole lists at C speed."""

from __future__ import annotations

from itertools import compress, count, islice, repeat
from operator import gt, itemgetter, le

from aupwatch.detectors.item import EVENT_ID, KEY, RANK, TS, Item

_ORDER = itemgetter(TS, RANK, EVENT_ID, KEY)


def sort_ties(items: list[Item]) -> None:
    """Completes the (ts, rank, event id, key) order of items already sorted by ts.

    Only runs of equal ts can be out of order; whole items are compared to find them (a
    tie on those four fields goes on to the payloads, which may fail to compare: then all
    items are sorted). Each run is sorted stably, so the result is that of one stable
    sort of the whole list.
    """
    try:
        bad = list(compress(count(), map(gt, items, islice(items, 1, None))))
    except TypeError:
        items.sort(key=_ORDER)
        return
    n = len(items)
    end = 0
    for i in bad:
        if i < end:
            continue  # inside a run sorted already
        ts = items[i][TS]
        lo, end = i, i + 2
        while lo > 0 and items[lo - 1][TS] == ts:
            lo -= 1
        while end < n and items[end][TS] == ts:
            end += 1
        items[lo:end] = sorted(items[lo:end], key=_ORDER)


def prune(seen: dict[str, int], before: int) -> None:
    """Forgets the remembered ids older than ``before``, keeping the rest in their order.

    At C speed, as busy keys prune often; usually every id has expired.
    """
    if not seen or max(seen.values()) < before:
        seen.clear()
        return
    keep = dict(compress(seen.items(), map(le, repeat(before), seen.values())))
    if len(keep) < len(seen):  # the survivors (ts >= before), in their order
        seen.clear()
        seen.update(keep)

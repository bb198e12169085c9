"""The event-time engine: buffers items until the watermark passes them, then applies
them in order to per-key state, with duplicate suppression and timers.

One ``Shard`` holds the state of one partition of one stage. Offline replay runs one shard
per stage; the Kafka workers run one per assigned partition. The engine never reads a
clock: it only moves when it is given items and watermarks.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

from detectors.config import DetectorConfig

# An item: (ts, rank, event_id, state key, payload). The state key starts with the
# operator's one-letter prefix and a "|".
Item = tuple[int, int, str, str, Any]
State = dict[str, Any]
# A stored entry: [seen event ids -> ts, operator state or None, seen size to prune at].
Entry = list[Any]
NEVER = -(1 << 62)
_ORDER = itemgetter(0, 1, 2, 3)
_GC = "\x00gc"
_PRUNE_MIN = 64


@dataclass(slots=True)
class Output:
    """What applying items produced, drained by the caller."""

    forwards: list[Item] = field(default_factory=list)
    occurrences: list[Item] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    unowned: int = 0
    duplicates: int = 0
    late_items: int = 0
    tokens: list[Any] = field(default_factory=list)


class Operator(Protocol):
    """One detector step over the items of one state-key prefix."""

    prefix: str

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Applies one item (in event-time order) and returns the new state."""

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Handles the timer ``state['_t'] == due`` and returns the new state."""


class Shard:
    """Event-time ordered processing of one partition's items.

    Args:
        operators: The operators of this stage, each owning the keys of its prefix.
        config: Detector settings (lateness is applied by the caller's watermark;
            ``dedup_horizon`` bounds the remembered event ids).
        store: Where entries live: a dict offline, a table-backed mapping in a worker.
    """

    def __init__(
        self,
        operators: Iterable[Operator],
        config: DetectorConfig,
        store: MutableMapping[str, Entry] | None = None,
    ) -> None:
        self.ops = {op.prefix: op for op in operators}
        self.config = config
        self.store: MutableMapping[str, Entry] = {} if store is None else store
        self.wm = NEVER
        self.buffer: list[tuple[int, int, str, str, Any, Any]] = []
        self.pending: set[tuple[str, str]] = set()
        self.timers: list[tuple[int, str]] = []
        self.dirty: set[str] = set()
        self.token_counts: dict[Any, int] = {}
        self.rebuild_timers()

    def rebuild_timers(self) -> None:
        """Rebuilds the timer heap from the stored entries (after a restore)."""
        self.timers = []
        for key, (seen, state, _) in self.store.items():
            if state is not None and state.get("_t") is not None:
                self.timers.append((state["_t"], key))
            elif state is None and seen:
                due = max(seen.values()) + self.config.dedup_horizon + 1
                self.timers.append((due, key + _GC))
        heapq.heapify(self.timers)

    def add(self, items: Iterable[Item], out: Output, token: Any = None) -> None:
        """Takes new items: drops duplicates, applies late ones, buffers the rest.

        Args:
            items: Items in any order.
            out: Collects what late items produce.
            token: Handed back in ``out.tokens`` once every item added with it has been
                decided (used by workers to acknowledge input messages).
        """
        pending = self.pending
        store = self.store
        wm = self.wm
        held = 0
        for item in items:
            key = item[3]
            eid = item[2]
            pk = (key, eid)
            if pk in pending:
                out.duplicates += 1
                continue
            entry = store.get(key)
            if entry is not None and eid in entry[0]:
                out.duplicates += 1
                continue
            if item[0] <= wm:
                out.late_items += 1
                self._apply(item, out)
                continue
            pending.add(pk)
            self.buffer.append((*item, token))
            held += 1
        if token is not None:
            if held:
                self.token_counts[token] = self.token_counts.get(token, 0) + held
            else:
                out.tokens.append(token)

    def advance(self, wm: int, out: Output) -> None:
        """Moves the watermark and decides every buffered item and timer up to it.

        Args:
            wm: The new watermark (microseconds); a lower one is ignored.
            out: Collects forwards, occurrences and alerts.
        """
        if wm <= self.wm:
            return
        self.wm = wm
        buf = self.buffer
        if buf:
            buf.sort(key=_ORDER)
            cut = bisect_right(buf, wm, key=itemgetter(0))
            ready, self.buffer = buf[:cut], buf[cut:]
        else:
            ready = []
        timers = self.timers
        n = len(ready)
        i = 0
        while True:
            if timers and timers[0][0] <= wm and (i >= n or timers[0][0] <= ready[i][0]):
                due, key = heapq.heappop(timers)
                self._fire(due, key, out)
            elif i < n:
                entry = ready[i]
                i += 1
                self.pending.discard((entry[3], entry[2]))
                self._apply(entry, out)
                token = entry[5]
                if token is not None:
                    left = self.token_counts[token] - 1
                    if left:
                        self.token_counts[token] = left
                    else:
                        del self.token_counts[token]
                        out.tokens.append(token)
            else:
                break

    def _apply(self, item: tuple[Any, ...], out: Output) -> None:
        key = item[3]
        op = self.ops[key[0]]
        entry = self.store.get(key)
        if entry is None:
            entry = [{}, None, _PRUNE_MIN]
            self.store[key] = entry
        seen = entry[0]
        seen[item[2]] = item[0]
        if len(seen) >= entry[2]:
            # amortised O(1): after a prune the next one waits until the set doubles
            _prune(seen, self.wm - self.config.dedup_horizon)
            entry[2] = max(_PRUNE_MIN, 2 * len(seen))
        state = entry[1]
        old_t = None if state is None else state.get("_t")
        state = op.apply(key, state, item[:5], out)  # type: ignore[arg-type]
        self._store_state(key, entry, state, old_t)

    def _fire(self, due: int, key: str, out: Output) -> None:
        if key.endswith(_GC):
            key = key[: -len(_GC)]
            entry = self.store.get(key)
            if entry is not None and entry[1] is None:
                # a later gc timer exists for any id remembered after this one was set
                _prune(entry[0], due - self.config.dedup_horizon)
                if not entry[0]:
                    del self.store[key]
                    self.dirty.add(key)
            return
        entry = self.store.get(key)
        if entry is None or entry[1] is None or entry[1].get("_t") != due:
            return
        state = self.ops[key[0]].fire(key, entry[1], due, out)
        self._store_state(key, entry, state, due)

    def _store_state(self, key: str, entry: Entry, state: State | None, old_t: Any) -> None:
        entry[1] = state
        self.dirty.add(key)
        if state is None:
            self._push_gc(key, entry[0])
            return
        new_t = state.get("_t")
        if new_t is not None and new_t != old_t:
            heapq.heappush(self.timers, (new_t, key))

    def _push_gc(self, key: str, seen: dict[str, int]) -> None:
        due = max(seen.values(), default=self.wm) + self.config.dedup_horizon + 1
        heapq.heappush(self.timers, (due, key + _GC))

    def state_sizes(self) -> dict[str, int]:
        """Counts stored keys per operator prefix."""
        sizes = dict.fromkeys(self.ops, 0)
        for key in self.store:
            sizes[key[0]] = sizes.get(key[0], 0) + 1
        return sizes

    def take_dirty(self) -> set[str]:
        """Returns and forgets the keys changed since the last call."""
        dirty, self.dirty = self.dirty, set()
        return dirty


def _prune(seen: dict[str, int], before: int) -> None:
    for eid in [eid for eid, ts in seen.items() if ts < before]:
        del seen[eid]

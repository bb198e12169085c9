"""The detect stage's shard: its items are records, and it remembers one id per record.

A detect item holds the state keys one record touches in this shard and the record's packed
fields (``aupwatch.detectors.item``). The shard remembers the record's event id once, in
``ids`` (event id -> the watermark that decided it, kept until the watermark is
``dedup_horizon`` past it), instead of once per key, and keeps no entry for a key whose
state is None: a re-delivered record is dropped whole before any key sees it.

Detect items of former versions (one per key, marked by ``PER_KEY`` before their key)
remember ``event id|key``; a record seen both ways is still applied once per key.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING

from aupwatch.detectors.bulk import prune
from aupwatch.detectors.declare import SEP
from aupwatch.detectors.engine import (
    GC_TIMER,
    PRUNE_MIN,
    SEEN,
    STATE,
    WRITTEN,
    Entry,
    Operator,
    Output,
    Shard,
)
from aupwatch.detectors.item import EVENT_ID, KEY, PER_KEY, TS, Item
from aupwatch.detectors.timers import NEAR_SPAN

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig


class RecordShard(Shard):
    """Event-time ordered processing of one detect partition's records.

    Args:
        operators: The detect stage's operators.
        config: Detector settings (``dedup_horizon`` bounds the remembered ids).
        store: Where entries live: a dict offline, a table-backed mapping in a worker.
        track_dirty: Collect changed keys for ``take_dirty``.
        ids: The remembered record ids to start from (a worker's restored ones).
        ids_key: Reported by ``take_dirty`` whenever ``ids`` changed (a worker persists
            them under it); None offline.
    """

    def __init__(
        self,
        operators: Iterable[Operator],
        config: DetectorConfig,
        store: MutableMapping[str, Entry] | None = None,
        track_dirty: bool = True,
        ids: dict[str, int] | None = None,
        ids_key: str | None = None,
    ) -> None:
        self.ids: dict[str, int] = {} if ids is None else ids
        self.ids_key = ids_key
        self.ids_prune_at = max(PRUNE_MIN, 2 * len(self.ids))
        # ids remembered per key (former items): while any is, records check them too
        self.per_key = any(SEP in rid for rid in self.ids)
        super().__init__(operators, config, store, track_dirty)

    def restore(self, frontier: int) -> None:
        """Resumes after a restart; keeps only the ids every key applied before it.

        An id later than the frontier may come from a checkpoint cut short, which wrote
        some of its keys and not others: its keys' written watermarks decide instead.
        Ids remembered per key by a former version join ``ids`` the same way.
        """
        super().restore(frontier)
        for rid in [rid for rid, ts in self.ids.items() if ts > frontier]:
            del self.ids[rid]
        for key in list(self.store):
            entry = self.store[key]
            former = entry[SEEN]
            if not former:
                continue
            for eid, ts in former.items():
                if ts <= frontier:
                    self.ids[f"{eid}{SEP}{key}"] = ts
                    self.per_key = True
            entry[SEEN] = {}  # an empty entry stays until its collection timer
        self._mark(self.ids_key)
        self.ids_prune_at = max(PRUNE_MIN, 2 * len(self.ids))

    def _mark(self, key: str | None) -> None:
        if self.track_dirty and key is not None:
            self.dirty.add(key)

    def _fresh_keys(self, item: Item, out: Output) -> list[str] | None:
        """The keys of a record not applied yet, remembering it (None: a duplicate).

        ``_decide`` inlines the usual case: no id remembered per key, none to remember.
        """
        keys = item[KEY]
        assert not isinstance(keys, str)
        eid, ids = item[EVENT_ID], self.ids
        if keys[0] == PER_KEY:
            keys = keys[1:]
            rid = f"{eid}{SEP}{keys[0]}"
            if eid in ids:
                rid = eid
            self.per_key = True
        else:
            rid = eid
            if self.per_key:
                keys = [k for k in keys if f"{eid}{SEP}{k}" not in ids]
        if rid in ids or not keys:
            out.duplicates += 1
            return None
        # kept until the watermark is dedup_horizon past the one that decided it (ts <= wm)
        ids[rid] = self.wm
        if len(ids) >= self.ids_prune_at:
            self._prune_ids()
        self._mark(self.ids_key)
        return keys

    def _prune_ids(self) -> None:
        # amortised O(1): the next prune waits until the set doubles, or grows back to the
        # size it had (so a step's many ids, all expired at the next, are pruned once)
        ids = self.ids
        size = len(ids)
        prune(ids, self.wm - self.config.dedup_horizon)
        self.ids_prune_at = max(PRUNE_MIN, 2 * len(ids), size)
        if self.per_key:  # a prune can only end it: the usual shard skips the scan
            self.per_key = any(SEP in r for r in ids)

    def _decide(self, ready: list[Item], out: Output) -> None:
        """Applies ordered records, firing the timers due before each key's turn."""
        timers = self.timers
        store = self.store
        get = store.get
        applies = {p: (op.apply, getattr(op, "timers", True)) for p, op in self.ops.items()}
        track_dirty = self.track_dirty
        dirty_add = self.dirty.add
        first, fire_until = timers.first, timers.fire_until
        # timers.push inlined: nearly every call pushes a retry scope's timer
        near, far, far_at = timers.near, timers.far, self.wm + NEAR_SPAN
        heappush = heapq.heappush
        fire = self._fire
        fresh_keys = self._fresh_keys
        ids, wm = self.ids, self.wm
        ids_key = self.ids_key if track_dirty else None
        nxt = first()
        for item in ready:
            ts = item[TS]
            keys: list[str] = item[KEY]  # type: ignore[assignment]  # a detect item's list
            if self.per_key or keys[0] == PER_KEY:
                fresh = fresh_keys(item, out)
                if fresh is None:
                    continue
                keys = fresh
            else:  # as _fresh_keys does, for a record's packed item
                eid = item[EVENT_ID]
                if eid in ids:
                    out.duplicates += 1
                    continue
                ids[eid] = wm
                if len(ids) >= self.ids_prune_at:
                    self._prune_ids()
                if ids_key is not None:
                    dirty_add(ids_key)
            for key in keys:
                if nxt <= ts:  # a timer due by now fires first
                    nxt = fire_until(ts, fire, out)
                apply, timed = applies[key[0]]
                entry = get(key)
                if entry is None:
                    state = apply(key, None, item, out)
                    if state is None:
                        continue  # no state: nothing to keep, the record id is remembered
                    store[key] = [{}, state, PRUNE_MIN]
                    old_t = None
                else:
                    state = entry[STATE]
                    old_t = None if state is None or not timed else state.get("_t")
                    state = apply(key, state, item, out)
                    if state is None:
                        self._drop(key, entry)
                        nxt = first()
                        continue
                    entry[STATE] = state
                if track_dirty:
                    dirty_add(key)
                if timed:
                    new_t = state.get("_t")
                    if new_t is not None and new_t != old_t:
                        heappush(far if new_t > far_at else near, (new_t, key))
                        if new_t < nxt:
                            nxt = new_t

    def _apply(self, item: Item, out: Output) -> None:
        """Applies one late record (no timers fire first)."""
        keys = self._fresh_keys(item, out)
        for key in keys or ():
            entry = self.store.get(key)
            op = self.ops[key[0]]
            if entry is None:
                state = op.apply(key, None, item, out)
                if state is not None:
                    entry = [{}, None, PRUNE_MIN]
                    self.store[key] = entry
                    self._store_state(key, entry, state, None)
                continue
            old = entry[STATE]
            state = op.apply(key, old, item, out)
            if state is None:
                self._drop(key, entry)
            else:
                self._store_state(key, entry, state, None if old is None else old.get("_t"))

    def _fire(self, due: int, key: str, out: Output) -> None:
        if key.endswith(GC_TIMER):
            super()._fire(due, key, out)
            return
        entry = self.store.get(key)
        if entry is None:
            return
        state = entry[STATE]
        if state is None or state.get("_t") != due:
            return
        state = self.ops[key[0]].fire(key, state, due, out)
        if state is None:
            self._drop(key, entry)
        else:
            self._store_state(key, entry, state, due)

    def _drop(self, key: str, entry: Entry) -> None:
        """Forgets a key whose state is gone; one written by a checkpoint stays a while.

        A persisted entry's written watermark tells a restarted worker which re-read
        records it applied, so it is kept, empty, until ``dedup_horizon`` has passed.
        """
        if len(entry) > WRITTEN:
            entry[STATE] = None
            if key not in self._gc_pending:
                self._push_gc(key, {})
        else:
            del self.store[key]
        if self.track_dirty:  # as _mark does (a retry scope's end: nearly every call)
            self.dirty.add(key)

    def state_sizes(self) -> dict[str, int]:
        """Counts stored keys per operator prefix (kept empty entries not counted)."""
        sizes = dict.fromkeys(self.ops, 0)
        for key, entry in self.store.items():
            if entry[STATE] is not None:
                sizes[key[0]] = sizes.get(key[0], 0) + 1
        return sizes

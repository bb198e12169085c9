"""The detect stage's shard: its items are records, and it remembers one id per record.

A detect item holds the state keys one record touches in this shard and the record's packed
fields (``aupwatch.detectors.item``). The shard remembers the record's event id once, in
``ids`` (event id -> the watermark that decided it, kept until the watermark is
``dedup_horizon`` past it), instead of once per key. Each detector step keeps its states
in a map of its own (key -> state alone: no ``Entry`` around it, no list and no id set per
key), so the few keys of a busy step stay in a small map while another holds millions; a
key whose state is None leaves its map: a re-delivered record is dropped whole before any
key sees it. In a worker every step's map is one view that keeps the table's entries
(``streams.worker.state_view``). Each operator's ``step`` reads and writes its map itself
(``detectors.steps``) and hands back only a timer it armed: the loop no longer looks a
state up, compares it or reads its ``_t`` before and after (2 % of replay's CPU).

The timers of a step that says they are quiet (``Operator``: the retry scopes', one for
nearly every call) live in a heap of their own and fire in one tight loop, ``_expire``:
about 2 % of replay's CPU, against the generic pop, fire and store of each.

Detect items of former versions (one per key, marked by ``PER_KEY`` before their key)
remember ``event id|key``; a record seen both ways is still applied once per key.
"""

from __future__ import annotations

import functools
import heapq
from collections import ChainMap
from collections.abc import Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING

from aupwatch.detectors.bulk import prune
from aupwatch.detectors.declare import SEP
from aupwatch.detectors.engine import NEVER, PRUNE_MIN, Operator, Output, Shard, State
from aupwatch.detectors.item import EVENT_ID, KEY, PER_KEY, TS, Item
from aupwatch.detectors.steps import States, step_by_apply
from aupwatch.detectors.timers import FOREVER, NEAR_SPAN, Timer, Timers

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig

# an operator's step: applies a record to one key in its map; returns a timer it armed
Step = Callable[[str, States, Item, Output], int | None]


class RecordShard(Shard):
    """Event-time ordered processing of one detect partition's records.

    Args:
        operators: The detect stage's operators.
        config: Detector settings (``dedup_horizon`` bounds the remembered ids).
        store: Key -> state of every step: a view of the table's entries in a worker; None
            (offline) gives each step a dict of its own.
        track_dirty: Collect changed keys for ``take_dirty``.
        ids: The remembered record ids to start from (a worker's restored ones).
        ids_key: Reported by ``take_dirty`` whenever ``ids`` changed (a worker persists
            them under it); None offline.
        written: A restored key's last persisted watermark (``NEVER``: none); a worker's
            store gives it, offline nothing is restored.
        latest_written: The latest of those watermarks.
        touched: Takes the keys whose states ``store`` handed out, stored or deleted since
            it was last called (a worker's view counts them itself, cheaper than the loop
            asking it about every key); None: the shard finds the changed keys itself.
    """

    def __init__(
        self,
        operators: Iterable[Operator],
        config: DetectorConfig,
        store: MutableMapping[str, State] | None = None,
        track_dirty: bool = True,
        ids: dict[str, int] | None = None,
        ids_key: str | None = None,
        written: Callable[[str], int] | None = None,
        latest_written: int = NEVER,
        touched: Callable[[], set[str]] | None = None,
    ) -> None:
        self.ids: dict[str, int] = {} if ids is None else ids
        self.touched = touched
        self.ids_key = ids_key
        self.written = written
        self.latest_written = latest_written
        self.ids_prune_at = max(PRUNE_MIN, 2 * len(self.ids))
        # ids remembered per key (former items): while any is, records check them too
        self.per_key = any(SEP in rid for rid in self.ids)
        operators = list(operators)
        # steps whose timers are quiet (``Operator``): a heap of their own, fired by _expire
        self.quiet = {op.prefix for op in operators if getattr(op, "quiet_timers", False)}
        self.quiet_timers: list[Timer] = []
        # prefix -> the map of that step's states
        self.maps: dict[str, MutableMapping[str, State]] = {
            op.prefix: {} if store is None else store for op in operators
        }
        # prefix -> its operator's step (``detectors.steps``): through apply if it has none
        self.steps: dict[str, Step] = {
            op.prefix: getattr(op, "step", None) or functools.partial(step_by_apply, op)
            for op in operators
        }
        # every state, read-only (writes go to the maps): one map in a worker, all offline
        whole = store if store is not None else ChainMap(*self.maps.values())
        super().__init__(operators, config, whole, track_dirty)

    def rebuild_timers(self) -> None:
        """Rebuilds the timers from the stored states (after a restore)."""
        self.max_frontier = max(self.max_frontier, self.latest_written)
        timers: list[Timer] = []
        self.quiet_timers = []
        for key, state in self.store.items():
            if (t := state.get("_t")) is not None:
                (self.quiet_timers if key[0] in self.quiet else timers).append((t, key))
        self.timers = Timers(timers, self.wm)
        heapq.heapify(self.quiet_timers)

    def _written(self, key: str) -> int:
        return NEVER if self.written is None else self.written(key)

    def restore(self, frontier: int) -> None:
        """Resumes after a restart; keeps only the ids every key applied before it.

        An id later than the frontier may come from a checkpoint cut short, which wrote
        some of its keys and not others: its keys' written watermarks decide instead.
        Ids remembered per key by a former version (``event id|key``, put in ``ids`` by the
        worker) are kept the same way.
        """
        super().restore(frontier)
        for rid in [rid for rid, ts in self.ids.items() if ts > frontier]:
            del self.ids[rid]
        self.per_key = any(SEP in rid for rid in self.ids)
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

    def advance(self, wm: int, out: Output) -> None:
        """As ``Shard.advance``; the quiet timers due by the watermark fire too."""
        super().advance(wm, out)
        if self.quiet_timers and self.quiet_timers[0][0] <= self.wm:
            self._expire(self.wm, out)

    def _decide(self, ready: list[Item], out: Output) -> None:
        """Applies ordered records, firing the timers due before each key's turn."""
        timers = self.timers
        maps = self.maps
        # per prefix: its step, whether its timers are quiet, its map
        applies = {p: (self.steps[p], p in self.quiet, maps[p]) for p in self.ops}
        quiet = self.quiet_timers
        expire = self._expire
        quiet_due = quiet[0][0] if quiet else FOREVER
        track_dirty = self.track_dirty
        dirty_add = self.dirty.add
        # whether the loop finds the changed keys (a store that counts them needs not)
        find_changed = track_dirty and self.touched is None
        first, fire_until = timers.first, timers.fire_until
        # timers.push inlined: half the calls arm a new ownership's timer (1.3 % of replay)
        near, far, far_at = timers.near, timers.far, self.wm + NEAR_SPAN
        lane = timers.lane
        heappush = heapq.heappush
        fire = self._fire
        fresh_keys = self._fresh_keys
        ids, wm = self.ids, self.wm
        ids_key = self.ids_key if track_dirty else None
        nxt = first()
        for item in ready:
            ts = item[TS]
            if nxt <= ts:  # timers due by now fire first (their keys' states change)
                nxt = fire_until(ts, fire, out)
            if quiet_due <= ts:
                quiet_due = expire(ts, out)
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
                step, quiet_step, store = applies[key[0]]
                if find_changed:  # a key that had or has a state changed (a worker persists it)
                    had = key in store
                    new_t = step(key, store, item, out)
                    if had or key in store:
                        dirty_add(key)
                else:
                    new_t = step(key, store, item, out)
                if new_t is None:
                    continue  # no timer armed: nearly every key
                if quiet_step:
                    heappush(quiet, (new_t, key))
                    if new_t < quiet_due:
                        quiet_due = new_t
                        if quiet_due <= ts:  # as below
                            quiet_due = expire(ts, out)
                    continue
                timer = (new_t, key)
                if new_t <= far_at:
                    heappush(near, timer)
                elif not lane or lane[-1] <= timer:
                    lane.append(timer)  # as Timers.push: a far timer set in order
                else:
                    heappush(far, timer)
                if new_t < nxt:
                    nxt = new_t
                    if nxt <= ts:  # due by now: it fires before the record's next key
                        nxt = fire_until(ts, fire, out)

    def _apply(self, item: Item, out: Output) -> None:
        """Applies one late record (no timers fire first)."""
        find_changed = self.track_dirty and self.touched is None  # as in _decide
        for key in self._fresh_keys(item, out) or ():
            store = self.maps[key[0]]
            had = find_changed and key in store
            new_t = self.steps[key[0]](key, store, item, out)
            if new_t is not None:
                self._arm(new_t, key)
            if had or (find_changed and key in store):
                self._mark(key)

    def _fire(self, due: int, key: str, out: Output) -> None:
        state = self.maps[key[0]].get(key)
        if state is None or state.get("_t") != due:
            return
        self._put(key, self.ops[key[0]].fire(key, state, due, out), due)

    def _expire(self, until: int, out: Output) -> int:
        """Fires the quiet timers due by ``until``; returns when the next one is due.

        As ``Timers.fire_until`` with ``_fire``, in one loop: a quiet timer emits nothing
        and changes only its own key, so it may fire apart from the other timers.
        """
        heap, maps, ops = self.quiet_timers, self.maps, self.ops
        heappop, heappush = heapq.heappop, heapq.heappush
        track_dirty, dirty_add = self.track_dirty, self.dirty.add
        while heap:
            if heap[0][0] > until:
                return heap[0][0]
            due, key = heappop(heap)
            store = maps[key[0]]
            state = store.get(key)
            if state is None or state.get("_t") != due:
                continue  # stale: the state moved its timer, or is gone
            new = ops[key[0]].fire(key, state, due, out)
            if new is None:
                del store[key]
            else:
                if new is not state:
                    store[key] = new
                t = new.get("_t")
                if t is not None and t != due:
                    heappush(heap, (t, key))  # fires in this loop if due by then
            if track_dirty:
                dirty_add(key)
        return FOREVER

    def _put(self, key: str, state: State | None, old_t: int | None) -> None:
        """Stores a key's new state (None: the key goes), arming its timer if it moved."""
        store = self.maps[key[0]]
        if state is None:
            if key not in store:
                return  # never stored: nothing changed
            del store[key]
        else:
            store[key] = state
            new_t = state.get("_t")
            if new_t is not None and new_t != old_t:
                self._arm(new_t, key)
        self._mark(key)

    def _arm(self, due: int, key: str) -> None:
        """Queues a key's new timer: a quiet step's in the quiet heap, others in the timers."""
        if key[0] in self.quiet:
            heapq.heappush(self.quiet_timers, (due, key))
        else:
            self.timers.push(due, key, self.wm)

    def take_dirty(self) -> set[str]:
        """As ``Shard.take_dirty``, with the keys the store counted (``touched``)."""
        dirty = super().take_dirty()
        if self.touched is not None:
            dirty |= self.touched()
        return dirty

    def state_sizes(self) -> dict[str, int]:
        """Counts stored keys per operator prefix."""
        if isinstance(self.store, ChainMap):  # a map per step
            return {p: len(m) for p, m in self.maps.items()}
        return super().state_sizes()

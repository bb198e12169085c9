"""The event-time engine: ordered, deduplicated application of items to per-key state.

It buffers items until the watermark passes them, then applies them in order to per-key
state, with duplicate suppression and timers. One ``Shard`` holds the state of one
partition of one stage: offline replay runs one shard per stage, the Kafka workers one
per assigned partition. The engine never reads a clock: it only moves when it is given
items and watermarks.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from itertools import count
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol, cast

from aupwatch.detectors.bulk import prune, sort_ties
from aupwatch.detectors.item import EVENT_ID, KEY, ORIGIN, PAYLOAD, RANK, TS
from aupwatch.detectors.item import Item as Item  # re-exported: operators import it here
from aupwatch.detectors.timers import Timers

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig

State = dict[str, Any]
# A stored entry, persisted as this JSON array (keys.STATE_FORMAT): [seen event ids -> ts,
# state or None, seen size to prune at, once persisted: the shard watermark it was written at]
Entry = list[Any]
SEEN, STATE, PRUNE_AT, WRITTEN = range(4)  # the positions of an Entry
NEVER = -(1 << 62)
_TS = itemgetter(TS)
GC_TIMER = "\x00gc"  # marks a collection timer in the heap (never stored): shards only
PRUNE_MIN = 64


@dataclass(slots=True)
class Output:
    """What applying items produced, drained by the caller."""

    forwards: list[Item] = field(default_factory=list)
    occurrences: list[Item] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # versions of excepted alerts (each with its exception's note); no origins kept
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)
    unowned: int = 0
    duplicates: int = 0
    late_items: int = 0
    tokens: list[Any] = field(default_factory=list)
    # outputs of late items: index i of forwards, or -1 - i of occurrences
    late_outputs: list[int] = field(default_factory=list)


class Operator(Protocol):
    """One detector step over the items of one state-key prefix."""

    prefix: str

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Applies one item (in event-time order) and returns the new state.

        A detect-stage operator may also have a ``step`` that keeps its own states
        (``detectors.steps``); the detect shard then calls it instead.
        """

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Handles the timer ``state['_t'] == due`` and returns the new state.

        An operator of the throttle or alerts stage whose states never hold ``_t`` may say
        so with ``timers = False``. One whose ``fire`` emits nothing and changes only that
        key's state may say so with ``quiet_timers = True``: the detect shard then fires
        its timers apart from the others, in a loop of their own
        (``RecordShard._expire``), still before any item of a later time.
        """


class Shard:
    """Event-time ordered processing of one partition's items.

    Args:
        operators: The operators of this stage, each owning the keys of its prefix.
        config: Detector settings (lateness is applied by the caller's watermark;
            ``dedup_horizon`` bounds the remembered event ids).
        store: Where entries live (key -> ``Entry``; ``RecordShard`` keeps states): a dict
            offline, a table-backed mapping in a worker.
        track_dirty: Collect changed keys for ``take_dirty`` (a worker persists them);
            offline replay persists nothing and turns it off.
    """

    def __init__(
        self,
        operators: Iterable[Operator],
        config: DetectorConfig,
        store: MutableMapping[str, Any] | None = None,
        track_dirty: bool = True,
    ) -> None:
        self.ops = {op.prefix: op for op in operators}
        self.config = config
        self.store: MutableMapping[str, Any] = {} if store is None else store
        self.wm = NEVER
        self.buffer: list[Item] = []
        self.timers = Timers()
        self.dirty: set[str] = set()
        self.track_dirty = track_dirty
        # a token is done once the watermark passes the latest item it brought
        self.tokens: list[tuple[int, int, Any]] = []
        self._seq = count()
        self._gc_pending: set[str] = set()
        # items at or before a restored frontier were applied before a restart: skip them
        self.frontier = NEVER
        self.max_frontier = NEVER
        self.rebuild_timers()

    def rebuild_timers(self) -> None:
        """Rebuilds the timer heap from the stored entries (after a restore)."""
        timers: list[tuple[int, str]] = []
        self._gc_pending = set()
        for key, entry in self.store.items():
            seen, state = entry[SEEN], entry[STATE]
            self.max_frontier = max(self.max_frontier, written_at(entry))
            if state is not None and state.get("_t") is not None:
                timers.append((state["_t"], key))
            elif state is None:
                due = max(seen.values(), default=NEVER) + self.config.dedup_horizon + 1
                timers.append((due, key + GC_TIMER))
                self._gc_pending.add(key)
        self.timers = Timers(timers, self.wm)

    def add(self, items: Iterable[Item], out: Output, token: Any = None) -> None:
        """Takes new items: applies late ones at once, buffers the rest.

        Duplicates are recognised when an item is decided (its event id is remembered
        by its key), so a re-delivery changes nothing wherever it lands.

        Args:
            items: Items in any order.
            out: Collects what late items produce.
            token: Handed back in ``out.tokens`` once every item added with it has been
                decided (used by workers to acknowledge input messages).
        """
        wm = self.wm
        buf = self.buffer
        if type(items) is list and items:
            # the usual batch: nothing late or restored, so all of it is buffered
            low = min(map(_TS, items))
            if low > wm and low > self.max_frontier:
                buf.extend(items)
                if token is not None:
                    heapq.heappush(self.tokens, (max(map(_TS, items)), next(self._seq), token))
                return
        latest = NEVER
        for given in items:
            ts = given[TS]
            if ts > self.max_frontier:
                item = given
            else:
                left = self._unrestored(given)
                if left is None:
                    continue
                item = left
            if ts <= wm:
                out.late_items += 1
                n_fwd, n_occ = len(out.forwards), len(out.occurrences)
                self._apply(item, out)
                out.late_outputs.extend(range(n_fwd, len(out.forwards)))
                out.late_outputs.extend(-1 - i for i in range(n_occ, len(out.occurrences)))
            else:
                buf.append(item)
                if ts > latest:
                    latest = ts
        if token is not None:
            if latest == NEVER:
                out.tokens.append(token)
            else:
                heapq.heappush(self.tokens, (latest, next(self._seq), token))

    def restore(self, frontier: int) -> None:
        """Resumes after a restart from persisted entries and the persisted watermark.

        Args:
            frontier: The shard watermark persisted with the last complete checkpoint;
                every item up to it had been applied, so redelivered ones are skipped.
        """
        self.frontier = frontier
        self.wm = max(self.wm, frontier)
        self.max_frontier = max(self.max_frontier, frontier)

    def _unrestored(self, item: Item) -> Item | None:
        """The item without the keys that applied it before a restart (None: all did)."""
        ts = item[TS]
        if ts <= self.frontier:
            return None
        keys = item[KEY]
        left = [k for k in _keys(keys) if ts > self._written(k)]
        if not left:
            return None
        if type(keys) is str:
            return item
        return (ts, item[RANK], item[EVENT_ID], left, item[PAYLOAD], item[ORIGIN])

    def _written(self, key: str) -> int:
        """The watermark a restored key was last persisted at (``NEVER``: not persisted)."""
        return written_at(self.store.get(key))

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
            # sorting by time alone is several times cheaper (int keys); only runs of
            # equal times then need the full order, and items of one record come in it
            buf.sort(key=_TS)
            cut = bisect_right(buf, wm, key=_TS)
            if cut == len(buf):
                ready, self.buffer = buf, []  # all of it: no copy
            else:
                ready = buf[:cut]
                del buf[:cut]
            sort_ties(ready)
            self._decide(ready, out)
        self.timers.fire_until(wm, self._fire, out)
        tokens = self.tokens
        while tokens and tokens[0][0] <= wm:
            out.tokens.append(heapq.heappop(tokens)[2])

    def _decide(self, ready: list[Item], out: Output) -> None:
        """Applies ordered items, firing the timers due before each (``_apply`` inlined)."""
        timers = self.timers
        store = self.store
        get = store.get
        # an operator without timers (``timers = False``) spares the two reads of ``_t``
        applies = {p: (op.apply, getattr(op, "timers", True)) for p, op in self.ops.items()}
        track_dirty = self.track_dirty
        dirty_add = self.dirty.add
        gc_pending = self._gc_pending
        push, first, fire_until = timers.push, timers.first, timers.fire_until
        wm = self.wm
        fire = self._fire
        # operators append to these lists (callers swap them only between advances)
        forwards, occurrences, alerts = out.forwards, out.occurrences, out.alerts
        # the earliest timer, kept in step with every push: one int compare per item
        nxt = first()
        for item in ready:
            ts = item[TS]
            if nxt <= ts:
                nxt = fire_until(ts, fire, out)
            key = cast(str, item[KEY])  # later stages: one key per item
            apply, timed = applies[key[0]]
            entry = get(key)
            if entry is None:
                emitted = len(forwards) + len(occurrences) + len(alerts)
                state = apply(key, None, item, out)
                if state is None and emitted == len(forwards) + len(occurrences) + len(alerts):
                    continue  # changed nothing: a re-delivery would change nothing either
                entry = [{item[EVENT_ID]: ts}, state, PRUNE_MIN]
                store[key] = entry
                old_t = None
            else:
                seen = entry[SEEN]
                eid = item[EVENT_ID]
                if eid in seen:
                    out.duplicates += 1
                    continue
                seen[eid] = ts
                if len(seen) >= entry[PRUNE_AT]:
                    # amortised O(1): after a prune the next one waits until the set doubles
                    prune(seen, self.wm - self.config.dedup_horizon)
                    entry[PRUNE_AT] = max(PRUNE_MIN, 2 * len(seen))
                state = entry[STATE]
                old_t = None if state is None or not timed else state.get("_t")
                state = apply(key, state, item, out)
                entry[STATE] = state
            # as _store_state does
            if track_dirty:
                dirty_add(key)
            if state is None:
                if key not in gc_pending:
                    self._push_gc(key, entry[SEEN])
                    nxt = first()
            elif timed:
                new_t = state.get("_t")
                if new_t is not None and new_t != old_t:
                    push(new_t, key, wm)
                    if new_t < nxt:
                        nxt = new_t

    def _apply(self, item: Item, out: Output) -> None:
        """Applies one late item (no timers fire first); ``_decide`` inlines the same."""
        key = cast(str, item[KEY])
        entry = self.store.get(key)
        if entry is None:
            emitted = len(out.forwards) + len(out.occurrences) + len(out.alerts)
            state = self.ops[key[0]].apply(key, None, item, out)
            if state is None and emitted == (
                len(out.forwards) + len(out.occurrences) + len(out.alerts)
            ):
                return  # changed nothing: a re-delivery would change nothing either
            entry = [{item[EVENT_ID]: item[TS]}, None, PRUNE_MIN]
            self.store[key] = entry
            self._store_state(key, entry, state, None)
            return
        seen = entry[SEEN]
        if item[EVENT_ID] in seen:
            out.duplicates += 1
            return
        seen[item[EVENT_ID]] = item[TS]
        if len(seen) >= entry[PRUNE_AT]:
            # amortised O(1): after a prune the next one waits until the set doubles
            prune(seen, self.wm - self.config.dedup_horizon)
            entry[PRUNE_AT] = max(PRUNE_MIN, 2 * len(seen))
        state = entry[STATE]
        old_t = None if state is None else state.get("_t")
        state = self.ops[key[0]].apply(key, state, item, out)
        self._store_state(key, entry, state, old_t)

    def _fire(self, due: int, key: str, out: Output) -> None:
        if key.endswith(GC_TIMER):
            key = key[: -len(GC_TIMER)]
            self._gc_pending.discard(key)
            entry = self.store.get(key)
            if entry is not None and entry[STATE] is None:
                prune(entry[SEEN], due - self.config.dedup_horizon)
                if entry[SEEN]:
                    self._push_gc(key, entry[SEEN])
                else:
                    del self.store[key]
                    if self.track_dirty:
                        self.dirty.add(key)
            return
        entry = self.store.get(key)
        if entry is None or entry[STATE] is None or entry[STATE].get("_t") != due:
            return
        state = self.ops[key[0]].fire(key, entry[STATE], due, out)
        seen = entry[SEEN]
        if state is None and seen and max(seen.values()) + self.config.dedup_horizon < due:
            # its collection would be due by now and fire in this same pass: drop it at once
            del self.store[key]
            if self.track_dirty:
                self.dirty.add(key)
            return
        self._store_state(key, entry, state, due)

    def _store_state(self, key: str, entry: Entry, state: State | None, old_t: Any) -> None:
        entry[STATE] = state
        if self.track_dirty:
            self.dirty.add(key)
        if state is None:
            if key not in self._gc_pending:
                self._push_gc(key, entry[SEEN])
            return
        new_t = state.get("_t")
        if new_t is not None and new_t != old_t:
            self.timers.push(new_t, key, self.wm)

    def _push_gc(self, key: str, seen: dict[str, int]) -> None:
        # due after the newest remembered id expires, so each push is later than the last
        due = max(seen.values(), default=self.wm) + self.config.dedup_horizon + 1
        self.timers.push(due, key + GC_TIMER, self.wm)
        self._gc_pending.add(key)

    def state_sizes(self) -> dict[str, int]:
        """Counts stored keys per operator prefix."""
        sizes = dict.fromkeys(self.ops, 0)
        for key in self.store:
            sizes[key[0]] = sizes.get(key[0], 0) + 1
        return sizes

    def changed(self, keys: Iterable[str]) -> None:
        """Marks keys changed outside the shard (a worker's expired entries) for the next take."""
        if self.track_dirty:
            self.dirty.update(keys)

    def take_dirty(self) -> set[str]:
        """Returns and forgets the keys changed since the last call."""
        dirty, self.dirty = self.dirty, set()
        return dirty


def _keys(keys: str | list[str]) -> list[str] | tuple[str]:
    """The state keys of an item: a detect-stage item's list, or a later stage's one key."""
    return (keys,) if isinstance(keys, str) else keys


def written_at(entry: Entry | None) -> int:
    """The watermark a checkpoint last stamped on an entry (``NEVER``: none, or no entry)."""
    return entry[WRITTEN] if entry is not None and len(entry) > WRITTEN else NEVER

"""A detect partition's states as the record shard sees them, kept in the table's entries.

The detect shard (``RecordShard``) maps each key to its state alone; the stage table keeps
``Entry`` lists, the format its changelog holds (``seen_log``). This view reads and writes
an entry's state, creates entries for new keys, and keeps what only a worker needs: the
watermark each entry was last persisted at. Offline, the shard's store is a plain dict.

A key whose state ends is deleted at once unless a checkpoint has persisted it: its empty
entry then stays, so that its written watermark still tells a restarted worker which
re-read records the key applied, until a complete checkpoint's frontier has passed that
watermark (``expire``): items at or below the frontier are skipped whole after a restart,
so the mark decides nothing any more.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from aupwatch.detectors.declare import SEP
from aupwatch.detectors.engine import NEVER, PRUNE_MIN, SEEN, STATE, WRITTEN, State, written_at


class StateView(MutableMapping[str, State]):
    """Key -> state over one detect partition's entries.

    Args:
        entries: The partition's view of the stage table (``stages.PartitionStore``).
        data: The table's dict itself (reads go straight to it).
    """

    def __init__(self, entries: MutableMapping[str, Any], data: MutableMapping[str, Any]) -> None:
        self.entries = entries
        self.data = data
        # persisted keys whose state has ended, kept empty until a frontier passes them
        self.emptied = {key for key in entries if entries[key][STATE] is None}
        # keys whose states were handed out by get (a step may change one in place), stored
        # or deleted: the keys the next checkpoint writes (``take_touched``)
        self.touched: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        """The key's state (``default`` without one); the key counts as touched."""
        entry = self.data.get(key)
        if entry is None:
            return default
        state = entry[STATE]
        if state is None:
            return default
        self.touched.add(key)
        return state

    def take_touched(self) -> set[str]:
        """Returns and forgets the keys touched since the last call."""
        touched, self.touched = self.touched, set()
        return touched

    def __contains__(self, key: object) -> bool:
        # a plain lookup: Mapping's would raise and catch a KeyError for every absent key
        entry = self.data.get(key) if isinstance(key, str) else None
        return entry is not None and entry[STATE] is not None

    def __getitem__(self, key: str) -> State:
        # not touched: a restart's scan of every state reads them this way
        entry = self.data.get(key)
        state: State | None = None if entry is None else entry[STATE]
        if state is None:
            raise KeyError(key)
        return state

    def __setitem__(self, key: str, state: State) -> None:
        entry = self.data.get(key)
        if entry is None:
            self.data[key] = [{}, state, PRUNE_MIN]
        else:
            entry[STATE] = state
        self.touched.add(key)

    def __delitem__(self, key: str) -> None:
        entry = self.data[key]
        if entry[STATE] is None:
            raise KeyError(key)
        self.touched.add(key)
        if len(entry) > WRITTEN:
            entry[STATE] = None
            self.emptied.add(key)
        else:
            del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return (k for k in self.entries if self.data[k][STATE] is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def written(self, key: str) -> int:
        """The watermark the key's entry was last persisted at (``NEVER``: not yet)."""
        return written_at(self.data.get(key))

    def latest_written(self) -> int:
        """The latest watermark any entry of the partition was persisted at."""
        return max((written_at(self.data[k]) for k in self.entries), default=NEVER)

    def former_ids(self, frontier: int) -> dict[str, int]:
        """Moves ids remembered per key (state format 2) out of the entries.

        Returns:
            ``event id|key`` -> watermark, for the ids decided at or before ``frontier``
            (those after it are judged by the keys' written watermarks instead).
        """
        ids: dict[str, int] = {}
        for key in self.entries:
            entry = self.data[key]
            if entry[SEEN]:
                ids.update(
                    (f"{eid}{SEP}{key}", ts) for eid, ts in entry[SEEN].items() if ts <= frontier
                )
                entry[SEEN] = {}
        return ids

    def expire(self, frontier: int) -> list[str]:
        """Deletes the empty entries a complete checkpoint's frontier has passed.

        Returns:
            The keys deleted (to be deleted from the changelog too).
        """
        gone = []
        for key in list(self.emptied):
            entry = self.data.get(key)
            if entry is None or entry[STATE] is not None:
                self.emptied.discard(key)
            elif written_at(entry) <= frontier:
                del self.data[key]
                self.emptied.discard(key)
                gone.append(key)
        return gone

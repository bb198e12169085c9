"""How a stage's entries go to its changelog: the remembered event ids in chunks.

An entry (``engine.Entry``) is ``[seen event ids -> ts, state, prune at, written wm]``. A
busy key remembers every event id of the dedup horizon (10 min by default), so writing the
entry whole at every checkpoint would cost time and changelog volume growing with the
horizon. Instead its seen ids go in chunks of ``CHUNK`` ids, in insertion order, under keys
of their own; a checkpoint rewrites only the chunks from the last partly written one on.
The main entry records the epoch and count of the ids it covers (``EPOCH``, ``COUNT``,
after the entry's own positions); a prune (which may remove ids anywhere)
starts a new epoch, and the old epoch's chunks are deleted after the new main entry.

Seen ids only ever grow at the end between prunes, so the ids written so far are intact
exactly when the id last written is still at its position.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from itertools import islice
from typing import Any

from aupwatch.detectors.engine import PRUNE_AT, SEEN, STATE, WRITTEN, Entry
from aupwatch.streams.worker.keys import SEEN_PREFIX, SEEN_SEP, chunk_key

CHUNK = 512
PREFIX, SEP = SEEN_PREFIX, SEEN_SEP
# what a main entry in the changelog adds after an Entry's positions: the epoch and count
# of the seen ids its chunks hold (its own seen ids are left empty)
EPOCH, COUNT = WRITTEN + 1, WRITTEN + 2


def _tail(seen: dict[str, int], n: int) -> list[tuple[str, int]]:
    """The last ``n`` items of ``seen``, in order (costs ``n``, not ``len(seen)``)."""
    items = list(islice(reversed(seen.items()), n))
    items.reverse()
    return items


class SeenLog:
    """What has been written of each key's seen ids, and the records to write next.

    Args:
        chunk: Ids per chunk.
    """

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        # key -> (epoch, ids written, last id written, chunks written)
        self.written: dict[str, tuple[int, int, str | None, int]] = {}
        self.stale: dict[int, list[str]] = {}  # partition -> chunk keys to delete

    def records(self, key: str, entry: Entry | None) -> Iterator[tuple[str, Any]]:
        """Changelog records ``(table key, value or None)`` storing ``entry`` (None: deleted).

        Chunks come before the main entry that covers them, and deletions of an older
        epoch after it, so a checkpoint cut short anywhere leaves a readable state.
        """
        old = self.written.pop(key, None)
        if entry is None:
            yield key, None
            if old is not None:
                yield from ((chunk_key(key, old[0], i), None) for i in range(old[3]))
            return
        seen: dict[str, int] = entry[SEEN]
        n = len(seen)
        if old is None and not n:
            # nothing remembered, nothing written before (every detect key, whose ids are
            # per record): no chunk, and no record of writing none, which would read the same
            yield key, [{}, entry[STATE], entry[PRUNE_AT], entry[WRITTEN], 0, 0]
            return
        if old is not None and self._intact(seen, old):
            epoch, start = old[0], old[1] - old[1] % self.chunk
        else:
            epoch, start = (old[0] + 1 if old is not None else 0), 0
        items = _tail(seen, n - start)
        first = start // self.chunk
        for i in range(0, len(items), self.chunk):
            yield chunk_key(key, epoch, first + i // self.chunk), dict(items[i : i + self.chunk])
        chunks = -(-n // self.chunk)
        last = items[-1][0] if items else (old[2] if old is not None and start else None)
        self.written[key] = (epoch, n, last, chunks)
        yield key, [{}, entry[STATE], entry[PRUNE_AT], entry[WRITTEN], epoch, n]
        if old is not None and old[0] != epoch:
            yield from ((chunk_key(key, old[0], i), None) for i in range(old[3]))

    @staticmethod
    def _intact(seen: dict[str, int], old: tuple[int, int, str | None, int]) -> bool:
        """Whether the ids written before still lead ``seen`` (no prune removed one)."""
        _, count, last, _ = old
        if count == 0:
            return True
        if len(seen) < count:
            return False
        return next(islice(reversed(seen), len(seen) - count, None)) == last

    def restore(self, data: MutableMapping[str, Any], partition: int, owner: Any) -> None:
        """Puts the recovered chunks of one partition back into their entries.

        Chunks that no main entry covers (a cut-short checkpoint, an older epoch) are
        dropped from ``data`` and queued for deletion from the changelog.

        Args:
            data: The stage table's dict, as recovered.
            partition: The partition whose entries to complete.
            owner: ``owner(key)`` is the partition of a state key.
        """
        chunks: dict[str, dict[tuple[int, int], dict[str, int]]] = {}
        for k in [k for k in data if k.startswith(PREFIX)]:
            key, epoch, index = k[len(PREFIX) :].rsplit(SEP, 2)
            if owner(key) == partition:
                chunks.setdefault(key, {})[int(epoch), int(index)] = data.pop(k)
        stale = self.stale.setdefault(partition, [])
        for key, parts in chunks.items():
            entry = data.get(key)
            if entry is None or len(entry) <= COUNT:
                stale += [chunk_key(key, e, i) for e, i in parts]
                continue
            epoch, n = entry[EPOCH], entry[COUNT]
            wanted = -(-n // self.chunk)
            seen: dict[str, int] = {}
            for i in range(wanted):
                seen.update(parts.pop((epoch, i), {}))
            seen = dict(islice(seen.items(), n))
            stale += [chunk_key(key, e, i) for e, i in parts]
            entry[SEEN] = seen
            if wanted:  # an entry that covers no id reads the same with no record (records)
                last = next(reversed(seen)) if seen else None
                self.written[key] = (epoch, len(seen), last, wanted)
        for key, entry in data.items():
            if isinstance(entry, list) and len(entry) > COUNT and owner(key) == partition:
                if entry[COUNT] and key not in self.written:  # ids covered, no chunk came back
                    self.written[key] = (
                        entry[EPOCH],
                        len(entry[SEEN]),
                        None,
                        -(-entry[COUNT] // self.chunk),
                    )
                del entry[EPOCH:]

    def forget(self, keys: Any) -> None:
        """Forgets what was written of keys of a revoked partition."""
        for key in keys:
            self.written.pop(key, None)

    def take_stale(self, partition: int) -> list[str]:
        """Chunk keys of one partition to delete from the changelog."""
        return self.stale.pop(partition, [])

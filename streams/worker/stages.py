"""Per-stage bookkeeping of a worker.

Shards per partition, upstream markers and batching of internal messages. Kafka-agnostic:
the worker hands it decoded messages and sends what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import NEVER, SEEN, Entry, Output, Shard
from aupwatch.detectors.item import TS, Item
from aupwatch.detectors.pipeline import stage_operators
from aupwatch.detectors.record_shard import RecordShard
from aupwatch.detectors.watermarks import UpstreamWatermarks
from aupwatch.errors import AupwatchError
from aupwatch.streams.worker.keys import (
    STATE_FORMAT,
    format_key,
    frontier_key,
    ids_key,
    is_state,
    owner,
    partition_of,
)
from aupwatch.streams.worker.seen_log import CHUNK, SeenLog
from aupwatch.streams.worker.state_view import StateView
from aupwatch.streams.worker.wire import LinkNotices, WireItem, decode, legacy_detect, to_item


class PartitionStore(MutableMapping[str, Entry]):
    """One partition's view of a stage table's dict (iteration filters by partition).

    Args:
        data: The table's in-memory dict (all assigned partitions of the stage).
        partition: The partition this view iterates.
        partitions: Partition count of the stage topic.
    """

    def __init__(self, data: MutableMapping[str, Any], partition: int, partitions: int) -> None:
        self.data = data
        self.partition = partition
        self.partitions = partitions
        # reads go straight to the dict: a shard looks up every key of every record
        self.get = data.get  # type: ignore[method-assign,assignment]

    def __getitem__(self, key: str) -> Entry:
        entry: Entry = self.data[key]
        return entry

    def get(self, key: str, default: Any = None) -> Any:  # noqa: D102
        return self.data.get(key, default)

    def __setitem__(self, key: str, value: Entry) -> None:
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        p, n = self.partition, self.partitions
        return (k for k in list(self.data) if is_state(k) and partition_of(k, n) == p)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Stage:
    """The shards one worker holds for one stage, and their upstream markers.

    Args:
        name: ``detect``, ``throttle`` or ``alerts``.
        config: Detector settings.
        partitions: Partition count of this stage's topic.
        sources: Names of every upstream partition (markers expected from each).
        data: The stage table's in-memory dict.
        seen_chunk: Remembered event ids per changelog record (see ``seen_log``).
    """

    def __init__(
        self,
        name: str,
        config: DetectorConfig,
        partitions: int,
        sources: list[str],
        data: MutableMapping[str, Any],
        seen_chunk: int = CHUNK,
    ) -> None:
        self.name = name
        self.config = config
        self.partitions = partitions
        self.sources = sources
        self.data = data
        self.shards: dict[int, Shard] = {}
        self.upstream: dict[int, UpstreamWatermarks] = {}
        self.sent: dict[int, tuple[int, bool]] = {}
        self.received: dict[int, dict[str, Any]] = {}
        self.idle: dict[int, bool] = {}  # whether a shard's last advance found all idle
        self.progress: dict[int, tuple[int, float]] = {}  # shard -> (wm, since when)
        self.seen_log = SeenLog(seen_chunk)
        self.views: dict[int, StateView] = {}  # detect partitions' state views
        # input partitions promise max time - lateness; their idleness is checked afresh
        self.from_input = name == "detect"

    def shard(self, partition: int) -> Shard:
        """The shard of a partition, built from the recovered table on first use."""
        shard = self.shards.get(partition)
        if shard is None:
            written = self.data.get(format_key(partition), 1)
            if not isinstance(written, int) or written > STATE_FORMAT:
                raise AupwatchError(
                    f"state was written in format {written}, newer than this version of "
                    f"aupwatch reads ({STATE_FORMAT}): upgrade every worker of the group",
                    stage=self.name,
                    partition=partition,
                )
            n = self.partitions
            self.seen_log.restore(self.data, partition, lambda key: owner(key, n))
            store = PartitionStore(self.data, partition, self.partitions)
            ops = stage_operators(self.name, self.config)
            frontier = self.data.get(frontier_key(partition))
            if self.from_input:
                ids = self.data.get(ids_key(partition))
                if not isinstance(ids, list):
                    ids = self.data[ids_key(partition)] = [{}, None, 0]
                view = self.views[partition] = StateView(store, self.data)
                since = frontier if isinstance(frontier, int) else NEVER
                ids[SEEN].update(view.former_ids(since))
                shard = RecordShard(
                    ops,
                    self.config,
                    view,
                    ids=ids[SEEN],
                    ids_key=ids_key(partition),
                    written=view.written,
                    latest_written=view.latest_written(),
                    touched=view.take_touched,
                )
                shard.restore(since)
            else:
                shard = Shard(ops, self.config, store)
                if isinstance(frontier, int):
                    shard.restore(frontier)
            self.shards[partition] = shard
            self.upstream[partition] = UpstreamWatermarks(
                self.sources,
                self.config.allowed_lateness if self.from_input else 0,
                skip_idle=self.from_input,
            )
        return shard

    def expire(self) -> None:
        """After a complete checkpoint: empty entries its frontiers passed leave the table.

        They are deleted from the changelog at the next checkpoint (see ``StateView``).
        """
        for p, view in self.views.items():
            frontier = self.data.get(frontier_key(p))
            if isinstance(frontier, int) and view.emptied:
                self.shards[p].changed(view.expire(frontier))

    def drop(self, partition: int) -> None:
        """Forgets a revoked partition (its unacknowledged input is redelivered)."""
        self.views.pop(partition, None)
        self.shards.pop(partition, None)
        self.upstream.pop(partition, None)
        self.sent.pop(partition, None)
        self.received.pop(partition, None)
        self.idle.pop(partition, None)
        self.progress.pop(partition, None)
        n = self.partitions
        self.seen_log.forget([k for k in self.seen_log.written if owner(k, n) == partition])
        self.seen_log.take_stale(partition)

    def take(self, partition: int, value: bytes, token: Any, out: Output) -> list[LinkNotices]:
        """Adds one internal message's markers and items to its partition's shard.

        Returns:
            The detect partitions' link notices it carries (``link_gate``), if any.
        """
        hop = decode(value)
        shard = self.shard(partition)
        upstream = self.upstream[partition]
        shard.add(self._fresh(partition, hop.items, out), out, token)
        for mark in hop.marks:  # markers follow the items they cover
            upstream.update(*mark)
        return hop.notices

    def _fresh(self, partition: int, items: list[WireItem], out: Output) -> list[Item]:
        """Drops items an upstream sent again after it restarted.

        Input records carry their input offset: one seen already in this run is a
        re-read. Outputs of a stage are decided after its last marker, so one at or below
        a marker already received from that source is a re-emission, unless it is flagged
        as the output of a late item (``seq == -1``).
        """
        hw = self.received.setdefault(partition, {})
        marks = self.upstream[partition].marks
        fresh = []
        for item in items:
            source, seq = item.source, item.seq
            if source[0] == "i":
                if source in hw and seq <= hw[source]:
                    out.duplicates += 1
                    continue
                hw[source] = seq
            elif seq != -1 and source in marks and item.ts <= marks[source][0]:
                out.duplicates += 1
                continue
            if item.key.__class__ is str and self.from_input:
                # sent by a version before packed records
                fresh.append(legacy_detect(to_item(item)))
            else:
                fresh.append(to_item(item))
        return fresh

    def idle_ends(self, partitions: set[int]) -> dict[str, int | None]:
        """Upstream sources the given shards hold as idle, with the end offset read to."""
        out: dict[str, int | None] = {}
        for p in partitions:
            out.update(self.upstream[p].idle_ends())
        return out

    def advance(
        self, partitions: set[int], out: Output, waiting: frozenset[str] = frozenset()
    ) -> None:
        """Advances the given shards to their combined upstream watermark.

        Args:
            partitions: Shards to advance.
            out: Collects what they produce.
            waiting: Sources marked idle that have records waiting (not idle after all).
        """
        for p in partitions:
            wm, idle = self.upstream[p].combined(waiting)
            self.idle[p] = idle
            shard = self.shards[p]
            if idle and shard.buffer:
                # every source idle: nothing earlier can come, as at the end of a replay. A
                # source whose new owner found it all committed promises no time at all.
                wm = max(wm, max(item[TS] for item in shard.buffer))
            shard.advance(wm, out)

    def stalled(self, now: float) -> dict[int, tuple[float, int, list[str]]]:
        """Shards with items waiting whose watermark has not moved, and what holds them.

        Args:
            now: Monotonic time, seconds.

        Returns:
            Per shard: seconds without progress, items waiting, the sources holding it.
        """
        out = {}
        for p, shard in self.shards.items():
            last = self.progress.get(p)
            if not shard.buffer or last is None or last[0] != shard.wm:
                self.progress[p] = (shard.wm, now)
                continue
            out[p] = (now - last[1], len(shard.buffer), self.upstream[p].lagging())
        return out

    def markers(
        self, prefix: str, only_changed: bool, held: Callable[[int], int | None] | None = None
    ) -> list[list[Any]]:
        """Markers of this worker's shards for downstream stages (``wire.Marker``, no end).

        Args:
            prefix: The stage's source prefix (``d``, ``t``).
            only_changed: Only the markers that changed since they were last sent.
            held: The time of a shard's oldest output still held back (``link_gate``):
                its marker stays below it.
        """
        marks = []
        for p in sorted(self.shards):
            idle = self.idle.get(p, False)
            wm = self.shards[p].wm
            oldest = None if held is None else held(p)
            if oldest is not None and oldest <= wm:
                wm, idle = oldest - 1, False
            if only_changed and self.sent.get(p) == (wm, idle):
                continue
            self.sent[p] = (wm, idle)
            marks.append([f"{prefix}{p}", None if wm == NEVER else wm, idle])
        return marks

"""Per-stage bookkeeping of a worker.

Shards per partition, upstream markers, batching of internal messages. Kafka-agnostic:
the worker hands it decoded messages and sends what it returns.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from detectors.config import DetectorConfig
from detectors.engine import NEVER, Entry, Output, Shard
from detectors.pipeline import stage_operators
from detectors.watermarks import UpstreamWatermarks


def frontier_key(partition: int) -> str:
    """Table key of a shard's persisted watermark (written last in each checkpoint)."""
    return f"\x00wm{partition}"


def partition_of(key: str, partitions: int) -> int:
    """The partition of an internal topic (and its state changelog) that owns a state key."""
    return zlib.crc32(key.encode()) % partitions


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
        return (k for k in list(self.data) if k[0] != "\x00" and partition_of(k, n) == p)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def encode_batches(items: list[Any], marks: list[list[Any]], chunk: int) -> list[bytes]:
    """Encodes items for one partition as messages of at most ``chunk`` items.

    The markers ride on the last message, so they always follow the items they cover.
    """
    if not items:
        return [orjson.dumps({"m": marks, "x": []})]
    out = []
    for start in range(0, len(items), chunk):
        last = start + chunk >= len(items)
        out.append(orjson.dumps({"m": marks if last else [], "x": items[start : start + chunk]}))
    return out


class Stage:
    """The shards one worker holds for one stage, and their upstream markers.

    Args:
        name: ``detect``, ``throttle`` or ``alerts``.
        config: Detector settings.
        partitions: Partition count of this stage's topic.
        sources: Names of every upstream partition (markers expected from each).
        data: The stage table's in-memory dict.
    """

    def __init__(
        self,
        name: str,
        config: DetectorConfig,
        partitions: int,
        sources: list[str],
        data: MutableMapping[str, Any],
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

    def shard(self, partition: int) -> Shard:
        """The shard of a partition, built from the recovered table on first use."""
        shard = self.shards.get(partition)
        if shard is None:
            store = PartitionStore(self.data, partition, self.partitions)
            shard = Shard(stage_operators(self.name, self.config), self.config, store)
            frontier = self.data.get(frontier_key(partition))
            if isinstance(frontier, int):
                shard.restore(frontier)
            self.shards[partition] = shard
            self.upstream[partition] = UpstreamWatermarks(self.sources)
        return shard

    def drop(self, partition: int) -> None:
        """Forgets a revoked partition (its unacknowledged input is redelivered)."""
        self.shards.pop(partition, None)
        self.upstream.pop(partition, None)
        self.sent.pop(partition, None)
        self.received.pop(partition, None)

    def take(self, partition: int, value: bytes, token: Any, out: Output) -> None:
        """Adds one internal message's markers and items to its partition's shard."""
        msg = orjson.loads(value)
        shard = self.shard(partition)
        upstream = self.upstream[partition]
        shard.add(self._fresh(partition, msg["x"], out), out, token)
        for source, wm, idle in msg["m"]:  # markers follow the items they cover
            upstream.update(source, wm, idle)

    def _fresh(self, partition: int, items: list[Any], out: Output) -> list[Any]:
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
            source, seq = item[6], item[7]
            if source[0] == "i":
                if source in hw and seq <= hw[source]:
                    out.duplicates += 1
                    continue
                hw[source] = seq
            elif seq != -1 and source in marks and item[0] <= marks[source][0]:
                out.duplicates += 1
                continue
            fresh.append(item)
        return fresh

    def advance(self, partitions: set[int], out: Output) -> None:
        """Advances the given shards to their combined upstream watermark."""
        for p in partitions:
            wm, _ = self.upstream[p].combined()
            self.shards[p].advance(wm, out)

    def markers(self, prefix: str, only_changed: bool) -> list[list[Any]]:
        """Markers ``[source, wm, idle]`` of this worker's shards for downstream stages."""
        marks = []
        for p in sorted(self.shards):
            _, idle = self.upstream[p].combined()
            wm = self.shards[p].wm
            if only_changed and self.sent.get(p) == (wm, idle):
                continue
            self.sent[p] = (wm, idle)
            marks.append([f"{prefix}{p}", None if wm == NEVER else wm, idle])
        return marks


class OrderedAcks:
    """Releases acknowledgements per partition in offset order.

    Faust commits the first run of consecutive acknowledged offsets, even when it does not
    start at the committed offset, so a message acknowledged before an older one of its
    partition would let the commit skip the older one. Messages are decided out of order
    (each when the watermark passes its latest item), so they are held back here until
    every older message of their partition is decided too.
    """

    def __init__(self) -> None:
        self.pending: dict[tuple[str, int], deque[Any]] = {}
        self.decided: set[int] = set()

    def taken(self, events: list[Any]) -> None:
        """Registers events in the order they were consumed."""
        for ev in events:
            msg = ev.message
            tp = (msg.topic, msg.partition)
            queue = self.pending.get(tp)
            if queue is None:
                queue = self.pending[tp] = deque()
            queue.append(ev)

    def decide(self, events: list[Any]) -> None:
        """Marks events whose items are all decided."""
        self.decided.update(id(ev) for ev in events)

    def release(self) -> list[Any]:
        """Returns, and forgets, the decided events with no undecided older one."""
        out = []
        decided = self.decided
        for queue in self.pending.values():
            while queue and id(queue[0]) in decided:
                ev = queue.popleft()
                decided.discard(id(ev))
                out.append(ev)
        return out

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Drops revoked partitions: their unacknowledged messages are read again."""
        for tp in partitions:
            for ev in self.pending.pop(tp, ()):
                self.decided.discard(id(ev))

"""Which calls the throttle stage needs: those of developers that hold a live link.

``SharedQuota`` changes state for a call that links no one only when its developer holds
a link in the call's scope made within ``link_horizon`` before it (an edge of a group);
every other such call meets no group and changes nothing. Links are found by address,
spread over every detect partition, so a partition cannot know them alone: each detect
partition tells every other the links it found (``LinkNotices``) and then its watermark,
and holds its calls that link no one until every partition has told its links up to
their time. Then it sends on only those whose developer holds a link in their scope.

Exact, and never more than a superset: a call is dropped only when every link that could
touch it is known, and anything the gate is unsure of goes on as before (a partition whose
knowledge starts late, a checkpoint, which sends every held call). The marker a detect
partition sends the throttle stage stays below its oldest held call (``cap``), so the
throttle stage decides nothing before the calls it may still receive.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aupwatch.detectors.engine import NEVER
from aupwatch.detectors.item import C_DEV, KEY, PAYLOAD, TS, Item
from aupwatch.detectors.throttle import scope_of, solo_forward
from aupwatch.streams.worker.keys import partition_of
from aupwatch.streams.worker.wire import LinkNotice, LinkNotices, tag


@dataclass(slots=True)
class Knowledge:
    """What one detect partition knows of every partition's links.

    Attributes:
        marks: Detect partition -> the watermark up to which it has told its links.
        since: Detect partition -> the time after which its links are all known here
            (``NEVER``: from its first).
        links: Developer -> scope -> the latest time a link of it was told.
        held: The partition's calls that link no one, in decision order.
    """

    marks: dict[int, int] = field(default_factory=dict)
    since: dict[int, int] = field(default_factory=dict)
    links: dict[str, dict[str, int]] = field(default_factory=dict)
    held: deque[Item] = field(default_factory=deque)


@dataclass(slots=True)
class Released:
    """What ``LinkGate.release`` lets go.

    Attributes:
        forwards: Forwards to send, in decision order.
        dropped: Calls that cannot change the throttle stage, not sent.
        linked: Calls sent because their developer holds a link in their scope.
        unsure: Calls sent because a link that could touch them might be unread.
    """

    forwards: list[Item] = field(default_factory=list)
    dropped: int = 0
    linked: int = 0
    unsure: int = 0

    def counts(self) -> dict[str, int]:
        """The calls by outcome (the ``outcome`` label of ``aupwatch_link_gate_calls_total``)."""
        return {"dropped": self.dropped, "linked": self.linked, "unsure": self.unsure}


class LinkGate:
    """Holds each detect partition's calls that link no one until their links are known.

    Args:
        partitions: Partition count of the detect topic (notices come from each).
        horizon: ``link_horizon``, microseconds.
    """

    def __init__(self, partitions: int, horizon: int) -> None:
        self.partitions = partitions
        self.horizon = horizon
        self.known: dict[int, Knowledge] = {}
        self.told: dict[int, int | None] = {}  # partition -> the watermark it last told

    def tell(
        self, found: dict[int, list[LinkNotice]], wms: dict[int, int], only_changed: bool
    ) -> list[LinkNotices]:
        """The notices this worker's detect partitions send every detect partition.

        Args:
            found: Partition -> the links its latest step found (``notices_of``).
            wms: Partition -> its watermark, up to which every link is in ``found`` or
                was told before.
            only_changed: Only partitions with links or a new watermark.
        """
        out = []
        for p, shard_wm in wms.items():
            wm = None if shard_wm == NEVER else shard_wm
            links = found.get(p, [])
            if links or not only_changed or self.told.get(p, NEVER) != wm:
                self.told[p] = wm
                out.append(LinkNotices(p, wm, links))
        return out

    def open(self, partition: int, fresh: bool) -> Knowledge:
        """The knowledge of a partition, begun on first use.

        Args:
            partition: A detect partition of this worker.
            fresh: Nothing of it was ever committed, so it reads its topic from the start
                and learns every link ever told; otherwise links are known only from each
                partition's first notices read.
        """
        known = self.known.get(partition)
        if known is None:
            known = self.known[partition] = Knowledge()
            if fresh:
                known.since = dict.fromkeys(range(self.partitions), NEVER)
        return known

    def drop(self, partition: int) -> None:
        """Forgets a revoked partition (its held calls were sent by the checkpoint before)."""
        self.known.pop(partition, None)
        self.told.pop(partition, None)

    def learn(self, partition: int, notices: list[LinkNotices]) -> None:
        """Adds the notices a partition read from its topic."""
        known = self.known[partition]
        links, marks, since = known.links, known.marks, known.since
        for source, wm, told in notices:
            for developer, scope, ts in told:
                scopes = links.get(developer)
                if scopes is None:
                    links[developer] = {scope: ts}
                elif ts > scopes.get(scope, NEVER):
                    scopes[scope] = ts
            if wm is not None:
                if source not in since:  # links before its first marker may be unread
                    since[source] = wm
                if wm > marks.get(source, NEVER):
                    marks[source] = wm

    def hold(self, partition: int, item: Item) -> None:
        """Holds a call that links no one (its own detect item; ``throttle.solo_forward``)."""
        self.known[partition].held.append(item)

    def cap(self, partition: int) -> int | None:
        """The time of a partition's oldest held call (None: it holds none)."""
        known = self.known.get(partition)
        return known.held[0][TS] if known is not None and known.held else None

    def release(self, partition: int) -> Released:
        """Lets go the held calls every partition has told its links for, in order.

        A call goes on as a forward when its developer holds a link in its scope within
        ``horizon`` before it, or when a link that could touch it might be unknown.
        """
        out = Released()
        known = self.known.get(partition)
        if known is None or not known.held or len(known.marks) < self.partitions:
            return out
        held = known.held
        told = min(known.marks.values())
        start = max(known.since.values())  # every link after it is known
        links, horizon, forwards = known.links, self.horizon, out.forwards
        while held and held[0][TS] <= told:
            item = held.popleft()
            ts = item[TS]
            call = item[PAYLOAD]
            if ts - horizon <= start:
                out.unsure += 1
            else:
                scopes = links.get(call[C_DEV])
                if scopes is None or scopes.get(scope_of(call), NEVER) < ts - horizon:
                    out.dropped += 1
                    continue
                out.linked += 1
            forwards.append(solo_forward(item))
        return out

    def flush(self) -> dict[int, list[Item]]:
        """Every held call as a forward, by partition (before a checkpoint: nothing waits)."""
        out = {}
        for partition, known in self.known.items():
            if known.held:
                out[partition] = [solo_forward(item) for item in known.held]
                known.held.clear()
        return out

    def release_into(self, parts: dict[int, list[Any]], partitions: Any, n: int) -> dict[str, int]:
        """Releases these partitions' calls as tagged forwards into ``parts`` (``by_partition``).

        Returns:
            The calls by outcome, summed (``Released.counts``).
        """
        counts: Counter[str] = Counter()
        for p in partitions:
            released = self.release(p)
            by_partition(parts, released.forwards, f"d{p}", n)
            counts.update(released.counts())
        return counts

    def flush_into(self, parts: dict[int, list[Any]], n: int) -> int:
        """Every held call as a tagged forward into ``parts`` (``flush``); returns how many."""
        sent = 0
        for p, items in self.flush().items():
            by_partition(parts, items, f"d{p}", n)
            sent += len(items)
        return sent

    def prune(self, partition: int, wm: int) -> None:
        """Forgets links too old for any call the partition decides after ``wm``.

        Call with nothing held: its later calls come after ``wm`` (late ones are not held).
        """
        known = self.known.get(partition)
        if known is None or len(known.marks) < self.partitions:
            return
        oldest = min(wm, *known.marks.values()) - self.horizon
        kept = {}
        for developer, scopes in known.links.items():
            alive = {scope: ts for scope, ts in scopes.items() if ts >= oldest}
            if alive:
                kept[developer] = alive
        known.links = kept


def notices_of(forwards: list[Item]) -> list[LinkNotice]:
    """The links a detect partition's forwards carry (forwards to ``SharedQuota`` with links)."""
    out = []
    for forward in forwards:
        key = forward[KEY]
        if type(key) is str and key[0] == "T":
            developer, _, _, links = forward[PAYLOAD]
            if links:
                ts = forward[TS]
                out.append(LinkNotice(developer, key, ts))
                out.extend(LinkNotice(other, key, ts) for other in links)
    return out


def by_partition(parts: dict[int, list[Any]], forwards: list[Item], source: str, n: int) -> None:
    """Adds a source's forwards (each of one key), tagged, to the partitions their keys pick."""
    for item in forwards:
        key = item[KEY]
        assert isinstance(key, str)
        parts[partition_of(key, n)].append(tag(item, source, 0))

"""Watches for a worker that stands still: says why, and mends what it can.

Stages that hold items undecided (and which upstream partitions they wait for), a tick
that does not finish, a rebalance or table recovery that does not end; a recovery waiting
for changelog records the client already passed reads them again, and a worker whose
partitions stand still for long asks the group for a new rebalance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aupwatch.streams.worker.faust_app import (
    event_loops,
    lost_changelogs,
    partition_states,
    positions,
    read_again,
    rejoin,
    settled,
)
from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.stages import Stage
from aupwatch.streams.worker.tasks import task_waits

log = logging.getLogger(__name__)

STALL_AFTER = 60.0  # seconds a stage may hold items without progress before it says why
TICK_LATE = 5.0  # seconds since the tick last finished after which it counts as held
# seconds Faust may stay unsettled with no assigned partition moving before the worker asks
# the group to rebalance again (a rebalance waits at most its 60 s timeout for a member)
REJOIN_AFTER = 120.0
# seconds a recovering changelog partition may deliver nothing the consumer has passed
RESEEK_AFTER = 30.0


@dataclass(slots=True)
class Episode:
    """A condition that lasts: since when it holds, when it was last said, if described."""

    since: float | None = None
    said: float = 0.0
    described: bool = False

    def due(self, now: float, holds: bool) -> float | None:
        """How long it has held, when that is to be said now (once a minute); else None."""
        if not holds:
            self.since, self.described = None, False
            return None
        if self.since is None:
            self.since = self.said = now
            return None
        seconds = now - self.since
        if seconds >= STALL_AFTER and now - self.said >= STALL_AFTER:
            self.said = now
            return seconds
        return None


class Stalls:
    """Logs stalled stages once a minute and sets their gauge.

    Args:
        inputs: The worker's input partitions (abandoned replays are logged too).
        stages: The worker's stages by name.
        metrics: Optional ``Metrics``.
        app: The Faust app ``watch`` watches (None: only ``unsettled`` is called).
    """

    def __init__(
        self,
        inputs: InputPartitions,
        stages: dict[str, Stage],
        metrics: Any,
        app: Any = None,
    ) -> None:
        self.inputs = inputs
        self.stages = stages
        self.metrics = metrics
        self.app = app
        self.logged: dict[tuple[str, int], float] = {}  # (stage, partition) -> when
        self.rebalance = Episode()  # Faust rebalancing or recovering tables
        self.held = Episode()  # the tick not finishing
        self.ticked_at: float | None = None  # when the tick last finished (None: never)
        # the fetch positions last seen while Faust is unsettled, and since when they hold
        self.still: tuple[dict[Any, int | None], float] | None = None
        self.reread: set[Any] = set()  # changelog partitions read again in this rebalance

    async def watch(self) -> None:
        """Run by a timer of its own, once a second: the tick may wait on the lock."""
        now = time.monotonic()
        calm = settled(self.app)
        self.unsettled(now, calm)
        self.stuck(now)
        moved = None if calm else positions(self.app)
        if moved is None:
            self.reread = set()
            self.unmoving(now, None)
            return
        # each partition once a rebalance: if reading it again does not help, the rejoin will
        lost = {
            tp: offset
            for tp, offset in lost_changelogs(self.app, moved, now, RESEEK_AFTER).items()
            if tp not in self.reread
        }
        if lost:
            self.reread |= set(lost)
            log.warning(
                "table recovery: the consumer passed changelog records it never received; "
                "reading them again: %s",
                ", ".join(f"{tp.topic}[{tp.partition}] from {o}" for tp, o in sorted(lost.items())),
            )
            await read_again(self.app, lost)
        elif self.unmoving(now, moved):
            rejoin(self.app)

    def unmoving(self, now: float, moved: dict[Any, int | None] | None) -> bool:
        """Whether to ask the group to rebalance: Faust stuck with no partition moving.

        A worker whose table recovery received nothing for minutes stayed so until it was
        restarted (docs/operations.md); a new rebalance gives it a new assignment, and
        Faust a new recovery. Asked at most once every ``REJOIN_AFTER`` seconds.

        Args:
            now: Monotonic time, seconds.
            moved: The fetch positions of the assigned partitions (None: Faust is settled).
        """
        if moved is None:
            self.still = None
            return False
        if self.still is None or self.still[0] != moved:
            self.still = (moved, now)
            return False
        seconds = now - self.still[1]
        if seconds < REJOIN_AFTER:
            return False
        log.warning(
            "Faust has been rebalancing or recovering its tables and no assigned partition "
            "has moved for %.0f s: asking the group to rebalance again",
            seconds,
        )
        self.still = (moved, now)
        return True

    def ticked(self, now: float) -> None:
        """Notes that the tick finished (``now``: monotonic time, seconds)."""
        self.ticked_at = now

    def unsettled(self, now: float, settled: bool) -> None:
        """Says, once a minute, that Faust has been rebalancing or recovering for long.

        Until its table recovery ends a worker's stages hold nothing, so ``report`` would
        say nothing about a worker stuck there. The first time, it also says where the
        tasks of the app's event loops wait, to show what holds it.

        Args:
            now: Monotonic time, seconds.
            settled: Whether Faust is neither rebalancing nor recovering tables.
        """
        seconds = self.rebalance.due(now, not settled)
        if seconds is not None:
            log.warning(
                "Faust has been rebalancing or recovering its tables for %.0f s: "
                "no stage decides until it is done",
                seconds,
            )
            self._describe(self.rebalance)

    def stuck(self, now: float) -> None:
        """Says, once a minute, that the tick has not finished for long, and where it waits.

        The tick takes the lock every stage takes: a tick held that long means the stages
        are held too, or the broker does not answer.

        Args:
            now: Monotonic time, seconds.
        """
        seconds = 0.0 if self.ticked_at is None else now - self.ticked_at
        if self.held.due(now, seconds >= TICK_LATE) is not None:
            log.warning(
                "the worker's once-a-second tick has not finished for %.0f s: it waits for "
                "the stages' lock or for the broker",
                seconds,
            )
            self._describe(self.held)

    def _describe(self, episode: Episode) -> None:
        """Says, once an episode, where the worker's tasks wait and its partitions' states."""
        if self.app is None or episode.described:
            return
        episode.described = True
        for title, lines in self._diagnosis():
            log.warning("%s:\n  %s", title, "\n  ".join(lines))

    def _diagnosis(self) -> Iterator[tuple[str, list[str]]]:
        try:
            for name, loop in event_loops(self.app).items():
                yield f"{name} loop's tasks wait at", task_waits(loop)
            yield "assigned partitions", partition_states(self.app)
        except Exception as exc:  # only a diagnosis: it must not stop the worker
            yield "cannot say more", [repr(exc)]

    def report(self, now: float) -> None:
        """Says, once a minute, which stage waits with items undecided and for what.

        Args:
            now: Monotonic time, seconds.
        """
        for q, producers in self.inputs.abandoned(now).items():
            log.warning(
                "input partition %d: replay %s sent nothing for %.0f s and no end marker; "
                "no longer waiting for it",
                q,
                ", ".join(producers),
                self.inputs.replay_timeout,
            )
        for name, stage in self.stages.items():
            worst = 0.0
            for p, (seconds, items, lagging) in stage.stalled(now).items():
                worst = max(worst, seconds)
                logged = self.logged.get((name, p), 0.0)
                if seconds >= STALL_AFTER and now - logged >= STALL_AFTER:
                    self.logged[name, p] = now
                    log.warning(
                        "%s[%d]: %d items undecided, no progress for %.0f s: waiting for %s",
                        name,
                        p,
                        items,
                        seconds,
                        ", ".join(lagging) or "nothing (all idle)",
                    )
            if self.metrics is not None:
                self.metrics.set_stalled(name, worst)

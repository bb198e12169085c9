"""Says which stage waits with items undecided, and for which upstream partitions."""

from __future__ import annotations

import logging
from typing import Any

from aupwatch.streams.worker.inputs import InputPartitions
from aupwatch.streams.worker.stages import Stage

log = logging.getLogger(__name__)

STALL_AFTER = 60.0  # seconds a stage may hold items without progress before it says why


class Stalls:
    """Logs stalled stages once a minute and sets their gauge.

    Args:
        inputs: The worker's input partitions (abandoned replays are logged too).
        stages: The worker's stages by name.
        metrics: Optional ``Metrics``.
    """

    def __init__(self, inputs: InputPartitions, stages: dict[str, Stage], metrics: Any) -> None:
        self.inputs = inputs
        self.stages = stages
        self.metrics = metrics
        self.logged: dict[tuple[str, int], float] = {}  # (stage, partition) -> when
        # since when Faust is rebalancing or recovering tables (None: it is not), last said
        self.unsettled_since: float | None = None
        self.unsettled_logged = 0.0

    def unsettled(self, now: float, settled: bool) -> None:
        """Says, once a minute, that Faust has been rebalancing or recovering for long.

        Until its table recovery ends a worker's stages hold nothing, so ``report`` would
        say nothing about a worker stuck there.

        Args:
            now: Monotonic time, seconds.
            settled: Whether Faust is neither rebalancing nor recovering tables.
        """
        if settled:
            self.unsettled_since = None
            return
        if self.unsettled_since is None:
            self.unsettled_since = self.unsettled_logged = now
            return
        seconds = now - self.unsettled_since
        if seconds >= STALL_AFTER and now - self.unsettled_logged >= STALL_AFTER:
            self.unsettled_logged = now
            log.warning(
                "Faust has been rebalancing or recovering its tables for %.0f s: "
                "no stage decides until it is done",
                seconds,
            )

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

"""Occurrences: one breach fact at an event time, sent towards the alert aggregator.

Exceptions are judged here, at the occurrence's event time, so that replay, stream and
restarts agree: an excepted occurrence goes to the suppressed aggregator (prefix ``S``)
instead of the alert aggregator (prefix ``A``), with the index of the exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from aupwatch.detectors.declare import SEP
from aupwatch.detectors.item import EVENT_ID, ORIGIN, RANK, TS
from aupwatch.detectors.tuning import ExceptionRule

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output


class Emitter:
    """Emits the occurrences of one detector.

    Args:
        config: Gives the exceptions of the detector.
        detector: The detector's name.
    """

    __slots__ = ("detector", "rules")

    def __init__(self, config: DetectorConfig, detector: str) -> None:
        self.detector = detector
        self.rules: tuple[ExceptionRule, ...] = tuple(
            r for r in config.exceptions if r.detector == detector
        )

    def __call__(
        self,
        out: Output,
        item: Item,
        reason: str,
        subject: dict[str, Any],
        *,
        oid: str,
        first_seen: int | None = None,
        evidence: dict[str, Any] | None = None,
        counters: dict[str, int] | None = None,
        distinct: dict[str, str | None] | None = None,
        ts: int | None = None,
    ) -> None:
        """Emits one breach occurrence towards the aggregator.

        Args:
            out: Where the occurrence goes.
            item: The item being decided (gives time, rank and source event id).
            reason: Reason code.
            subject: The alert subject (ids only).
            oid: Id of this occurrence, unique for the subject (e.g. the event id).
            first_seen: Earliest evidence time, default the occurrence time.
            evidence: Detector evidence; the latest occurrence's evidence wins.
            counters: Numbers summed over the alert's occurrences.
            distinct: Values whose distinct count and sample the alert keeps.
            ts: Occurrence time, default the item's time.
        """
        at = item[TS] if ts is None else ts
        subj = orjson.dumps(subject, option=orjson.OPT_SORT_KEYS).decode()
        payload = {
            "f": at if first_seen is None else first_seen,
            "e": evidence or {},
            "c": counters or {},
            "u": {k: v for k, v in (distinct or {}).items() if v is not None},
            "ev": item[EVENT_ID] if item[RANK] >= 0 else None,  # timers have no source event
        }
        prefix = "A"
        if self.rules:
            rule = self.excepted(reason, subject, at)
            if rule is not None:
                prefix = "S"
                payload["x"] = rule.index
        key = f"{prefix}{SEP}{self.detector}{SEP}{reason}{SEP}{subj}"
        out.occurrences.append((at, item[RANK], oid, key, payload, item[ORIGIN]))

    def excepted(self, reason: str, subject: dict[str, Any], at: int) -> ExceptionRule | None:
        """The first exception (in config order) that covers this occurrence, or None."""
        for rule in self.rules:
            if rule.covers(reason, subject, at):
                return rule
        return None

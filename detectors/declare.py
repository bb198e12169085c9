"""Typed declarations of detectors: the one place each detector's facts are written.

A detector module declares one ``Detector``: its name, the policy clause, its reasons
(severity and summary template), its steps (operators with their state key and inputs)
and the settings it reads. The registry (``aupwatch.detectors.registry``) derives the
severity table, clauses, summaries, metric label vocabulary and stage operators from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from aupwatch.schemas.validate import SEPARATOR

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Operator

# separates the parts of state keys: no text of a valid record holds it
SEP = SEPARATOR


class Severity(StrEnum):
    """Alert severities of the alert contract, lowest first."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason code of a detector.

    Attributes:
        code: The reason code of the alert contract.
        severity: Default severity (a config override may change it).
        summary: ``str.format`` template over the subject and evidence fields.
        subject: The alert subject's field names for this reason.
    """

    code: str
    severity: Severity
    summary: str
    subject: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Step:
    """One operator of a detector and where it runs.

    Attributes:
        prefix: The one-letter state-key prefix the operator owns.
        stage: ``detect`` or ``throttle`` (the stage whose shards hold its keys).
        key: The record fields that make up the state key after the prefix.
        inputs: What feeds it: record kinds, or ``forward:<prefix>`` for another step.
        build: Makes the operator from the detector settings.
        live: Whether its items can change its state under the settings (None: always
            while the detector is on); records feed no item to a step that is not live.
    """

    prefix: str
    stage: str
    key: tuple[str, ...]
    inputs: tuple[str, ...]
    build: Callable[[DetectorConfig], Operator]
    live: Callable[[DetectorConfig], bool] | None = None


@dataclass(frozen=True, slots=True)
class Detector:
    """Everything the rest of the system needs to know about one detector.

    Attributes:
        name: The detector name of the alert contract.
        clause: The policy clause it enforces, quoted.
        reasons: Its reason codes.
        steps: Its operators, in the order items flow through them.
        settings: Config keys it reads (``table.key``), for documentation and checks.
        list_fields: Subject fields whose value is a list (matched as a set by exceptions).
    """

    name: str
    clause: str
    reasons: tuple[Reason, ...]
    steps: tuple[Step, ...]
    settings: tuple[str, ...] = ()
    list_fields: frozenset[str] = frozenset()

    def reason(self, code: str) -> Reason:
        """The declared reason with this code.

        Raises:
            KeyError: The detector has no such reason.
        """
        for reason in self.reasons:
            if reason.code == code:
                return reason
        raise KeyError(code)

    @property
    def subject_fields(self) -> frozenset[str]:
        """Every subject field any of its reasons uses."""
        return frozenset(f for r in self.reasons for f in r.subject)

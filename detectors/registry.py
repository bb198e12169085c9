"""The registry of detectors: every table about detectors is derived from their declarations.

Adding a detector means declaring it in its module and listing it in ``DETECTORS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from aupwatch.detectors import (
    credential,
    disclosure,
    disrespect,
    dormant,
    overreach,
    throttle,
    unauthorized,
)
from aupwatch.detectors.declare import Detector, Severity

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Operator, Output, State

DETECTORS: tuple[Detector, ...] = (
    unauthorized.DETECTOR,
    throttle.DETECTOR,
    disclosure.DETECTOR,
    dormant.DETECTOR,
    credential.DETECTOR,
    disrespect.DETECTOR,
    overreach.DETECTOR,
)
CATALOG: Mapping[str, Detector] = MappingProxyType({d.name: d for d in DETECTORS})
CLAUSES: Mapping[str, str] = MappingProxyType({d.name: d.clause for d in DETECTORS})
SEVERITY: Mapping[tuple[str, str], Severity] = MappingProxyType(
    {(d.name, r.code): r.severity for d in DETECTORS for r in d.reasons}
)
SUMMARY: Mapping[tuple[str, str], str] = MappingProxyType(
    {(d.name, r.code): r.summary for d in DETECTORS for r in d.reasons}
)
# state-key prefix -> detector name; the alert stage's own prefixes are "alerts"
PREFIXES: Mapping[str, str] = MappingProxyType(
    {
        **{step.prefix: d.name for d in DETECTORS for step in d.steps},
        "A": "alerts",
        "S": "alerts",
    }
)
if len(PREFIXES) != sum(len(d.steps) for d in DETECTORS) + 2:
    raise AssertionError("two steps declare the same state-key prefix")


def reason_severities() -> dict[str, dict[str, str]]:
    """Detectors, their reason codes and default severities (the metrics' label vocabulary).

    Returns:
        A new dict ``{detector: {reason: severity}}`` in declaration order.
    """
    return {d.name: {r.code: r.severity.value for r in d.reasons} for d in DETECTORS}


class Disabled:
    """Stands in for the operator of a switched-off detector: keeps and emits nothing.

    Args:
        prefix: The prefix of the operator it replaces.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Drops the item (and any state left from when the detector was on)."""
        return None

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Drops the state."""
        return None


def detector_operators(stage: str, config: DetectorConfig) -> list[Operator]:
    """The detector operators of one stage (``detect`` or ``throttle``), in declaration order.

    Args:
        stage: The stage name.
        config: Detector settings; a disabled detector gets ``Disabled`` operators.

    Returns:
        One operator per declared step of that stage.
    """
    ops: list[Operator] = []
    needed = _needed(config)
    for d in DETECTORS:
        for step in d.steps:
            if step.stage != stage:
                continue
            off = d.name in config.disabled and step.prefix not in needed
            ops.append(Disabled(step.prefix) if off else step.build(config))
    return ops


def live_prefixes(config: DetectorConfig) -> frozenset[str]:
    """The prefixes of the steps whose items can change state under ``config``.

    A step is live unless its detector is switched off (and no enabled detector reads its
    forwards) or its ``live`` test says its items change nothing under these settings.

    Args:
        config: Detector settings.

    Returns:
        The live steps' state-key prefixes, of every stage.
    """
    needed = _needed(config)
    return frozenset(
        step.prefix
        for d in DETECTORS
        for step in d.steps
        if (d.name not in config.disabled or step.prefix in needed)
        and (step.live is None or step.live(config))
    )


def _needed(config: DetectorConfig) -> set[str]:
    # a step of a switched-off detector still runs while an enabled one reads its forwards
    return {
        i.removeprefix("forward:")
        for d in DETECTORS
        if d.name not in config.disabled
        for step in d.steps
        for i in step.inputs
        if i.startswith("forward:")
    }

"""The aggregators that fold occurrences into deduplicated, upserted alerts.

Clauses, severities and summaries come from the detector declarations (the registry);
severity overrides from the config.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.declare import SEP
from aupwatch.detectors.engine import Item, Output, State
from aupwatch.detectors.item import ORIGIN, PAYLOAD, TS
from aupwatch.detectors.registry import CLAUSES, SEVERITY, SUMMARY
from aupwatch.schemas.records import format_ts

__all__ = ["SEP", "AlertAggregator", "SuppressedAggregator", "alert_id"]


def is_new(alert: dict[str, Any]) -> bool:
    """Whether an emitted version opens its alert: the first occurrence folds in as count 1."""
    return bool(alert["count"] == 1)


def alert_id(detector: str, reason: str, subject_json: str, ts: int) -> str:
    """Deterministic alert id: same breach in the same input, same id."""
    raw = f"{detector}|{reason}|{subject_json}|{ts}".encode()
    return hashlib.sha256(raw).hexdigest()[:24]


class AlertAggregator:
    """Folds occurrences of one (detector, reason, subject) into alerts (prefix ``A``).

    Args:
        config: Gives ``dedup_window`` and ``sample_size``.
    """

    prefix = "A"

    def __init__(self, config: DetectorConfig) -> None:
        self.window = config.dedup_window
        self.sample = config.sample_size
        self.severity = {k: v.value for k, v in {**SEVERITY, **config.severity}.items()}

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Opens or folds into the alert of this key and emits its new version."""
        ts, occ, origin = item[TS], item[PAYLOAD], item[ORIGIN]
        if state is None or ts >= state["ts"] + self.window:
            _, detector, reason, subj = key.split(SEP, 3)
            state = {
                "id": alert_id(detector, reason, subj, ts),
                "ts": ts,
                "first": occ["f"],
                "last": ts,
                "n": 0,
                "c": {},
                "u": {},
                "ev": [],
                "_t": ts + self.window,
            }
        state["first"] = min(state["first"], occ["f"])
        state["last"] = max(state["last"], ts)
        state["n"] += 1
        state["e"] = occ["e"]
        counters = state["c"]
        for name, n in occ["c"].items():
            counters[name] = counters.get(name, 0) + n
        for name, value in occ["u"].items():
            values = state["u"].setdefault(name, [])
            if value not in values:
                values.append(value)
        if (
            occ["ev"] is not None
            and len(state["ev"]) < self.sample
            and occ["ev"] not in state["ev"]
        ):
            state["ev"].append(occ["ev"])
        self.emit(key, state, occ, out, origin)
        return state

    def emit(self, key: str, state: State, occ: Any, out: Output, origin: int) -> None:
        """Sends the alert's new version out."""
        out.alerts.append(self.render(key, state))
        out.origins.append(origin)

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """The dedup window is over: the alert is final and its state is dropped."""
        return None

    def render(self, key: str, state: State) -> dict[str, Any]:
        """Builds the alert object (the alert contract) from the aggregator state."""
        _, detector, reason, subj = key.split(SEP, 3)
        subject = orjson.loads(subj)
        evidence: dict[str, Any] = dict(state["e"])
        evidence.update(state["c"])
        for name, values in state["u"].items():
            evidence[name] = sorted(values)[: self.sample]
            evidence[f"{name}_count"] = len(values)
        evidence["event_ids"] = list(state["ev"])
        fields = {**subject, **evidence}
        if isinstance(fields.get("developer_ids"), list):
            fields["developer_ids"] = ", ".join(fields["developer_ids"])
        try:
            summary = SUMMARY[(detector, reason)].format_map(fields)
        except KeyError:
            summary = f"{detector}: {reason}"
        return {
            "alert_id": state["id"],
            "detector": detector,
            "reason": reason,
            "severity": self.severity.get((detector, reason), "medium"),
            "clause": CLAUSES.get(detector, ""),
            "ts": format_ts(state["ts"]),
            "first_seen": format_ts(state["first"]),
            "last_seen": format_ts(state["last"]),
            "count": state["n"],
            "subject": subject,
            "summary": summary,
            "evidence": evidence,
        }


class SuppressedAggregator(AlertAggregator):
    """Folds excepted occurrences (prefix ``S``) into the alerts they would have been.

    Each version goes to ``Output.suppressed`` with the note of the matching exception
    (``note``) and its config key (``exception``); nothing goes to the alerts.

    Args:
        config: Gives ``dedup_window``, ``sample_size`` and the exceptions.
    """

    prefix = "S"

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.rules = {r.index: r for r in config.exceptions}

    def emit(self, key: str, state: State, occ: Any, out: Output, origin: int) -> None:
        """Sends the suppressed alert's new version out, with its exception."""
        alert = self.render(key, state)
        rule = self.rules.get(occ.get("x", -1))
        alert["note"] = rule.note if rule is not None else None
        alert["exception"] = rule.name if rule is not None else None
        out.suppressed.append(alert)

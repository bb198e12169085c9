"""Occurrences and the aggregator that folds them into deduplicated, upserted alerts."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.engine import Item, Output, State
from aupwatch.schemas.records import format_ts

SEP = "\x1f"
CLAUSES = {
    "unauthorized_seller_access": "Only act on behalf of Sellers that have granted you "
    "permission through third-party authorization.",
    "throttle_circumvention": "Do not attempt to circumvent throttling quotas through the "
    "creation of multiple Developer accounts within the same region.",
    "cross_seller_disclosure": "Do not disclose information, individually labeled or "
    "aggregated, obtained through Marketplace APIs on behalf of a Seller to other "
    "Application users or any outside parties.",
    "dormant_key": "Keys that do not make a successful call in 90 days will be deleted.",
}
SEVERITY = {
    ("unauthorized_seller_access", "no_grant"): "high",
    ("unauthorized_seller_access", "revoked"): "high",
    ("unauthorized_seller_access", "expired"): "medium",
    ("unauthorized_seller_access", "missing_role"): "high",
    ("throttle_circumvention", "shared_quota"): "medium",
    ("cross_seller_disclosure", "other_seller"): "critical",
    ("cross_seller_disclosure", "external_party"): "critical",
    ("dormant_key", "dormant_warning"): "low",
    ("dormant_key", "dormant"): "low",
    ("dormant_key", "reactivated"): "medium",
    ("dormant_key", "revoked_key_used"): "high",
}
_SUMMARY = {
    "no_grant": "App {app_id} called the API for seller {seller_id}, who never authorized it",
    "revoked": "App {app_id} called the API for seller {seller_id} after its authorization "
    "was revoked",
    "expired": "App {app_id} called the API for seller {seller_id} after its authorization expired",
    "missing_role": "App {app_id} called a restricted operation for seller {seller_id} "
    "without the role it needs",
    "shared_quota": "Linked developer accounts {developer_ids} together exceeded the "
    "{operation} quota of seller {seller_id} in {region}",
    "other_seller": "App {app_id} showed data of seller {owner_seller_id} to a user of "
    "seller {viewer_seller_id}",
    "external_party": "App {app_id} disclosed data of seller {owner_seller_id} to outside "
    "party {viewer_id}",
    "dormant_warning": "Key {key_id} of {developer_id} has made no successful call for "
    "{idle_days} days",
    "dormant": "Key {key_id} of {developer_id} is dormant: no successful call for {idle_days} days",
    "reactivated": "Dormant key {key_id} of {developer_id} was used again",
    "revoked_key_used": "Key {key_id} of {developer_id} was used after it was revoked or deleted",
}


def occur(
    out: Output,
    item: Item,
    detector: str,
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
        detector: Detector name.
        reason: Reason code.
        subject: The alert subject (ids only).
        oid: Id of this occurrence, unique for the subject (e.g. the event id).
        first_seen: Earliest evidence time, default the occurrence time.
        evidence: Detector evidence; the latest occurrence's evidence wins.
        counters: Numbers summed over the alert's occurrences.
        distinct: Values whose distinct count and sample the alert keeps.
        ts: Occurrence time, default the item's time.
    """
    at = item[0] if ts is None else ts
    subj = orjson.dumps(subject, option=orjson.OPT_SORT_KEYS).decode()
    key = f"A{SEP}{detector}{SEP}{reason}{SEP}{subj}"
    payload = {
        "f": at if first_seen is None else first_seen,
        "e": evidence or {},
        "c": counters or {},
        "u": {k: v for k, v in (distinct or {}).items() if v is not None},
        "ev": item[2] if item[1] >= 0 else None,  # timers have no source event
    }
    out.occurrences.append((at, item[1], oid, key, payload, item[5]))


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

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Opens or folds into the alert of this key and emits its new version."""
        ts, _, _, _, occ, origin = item[:6]
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
        out.alerts.append(self.render(key, state))
        out.origins.append(origin)
        return state

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
            summary = _SUMMARY[reason].format_map(fields)
        except KeyError:
            summary = f"{detector}: {reason}"
        return {
            "alert_id": state["id"],
            "detector": detector,
            "reason": reason,
            "severity": SEVERITY.get((detector, reason), "medium"),
            "clause": CLAUSES.get(detector, ""),
            "ts": format_ts(state["ts"]),
            "first_seen": format_ts(state["first"]),
            "last_seen": format_ts(state["last"]),
            "count": state["n"],
            "subject": subject,
            "summary": summary,
            "evidence": evidence,
        }

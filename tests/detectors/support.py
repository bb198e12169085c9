"""Helpers shared by the detector tests: case files, replay through the real decode path,
and comparison of final alerts with expectations."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from aupwatch.detectors.config import DetectorConfig
from aupwatch.detectors.pipeline import Pipeline
from aupwatch.schemas.decode import decode_line
from aupwatch.schemas.records import parse_ts

CASES_DIR = Path(__file__).parent / "cases"
DETECTORS = (
    "unauthorized_seller_access",
    "throttle_circumvention",
    "cross_seller_disclosure",
    "dormant_key",
    "credential_sharing",
    "throttle_disrespect",
    "internal_overreach",
)
CASE_KEYS = {"description", "config", "records", "expect", "xfail"}
REQUIRED_CASE_KEYS = {"description", "records", "expect"}
EXPECT_KEYS = {"reason", "subject", "count", "ts", "first_seen", "last_seen", "evidence"}
REQUIRED_EXPECT_KEYS = {"reason", "subject"}

Alert = dict[str, Any]


def call_item(key: str, ts: int, seller: str = "S1", status: int = 200) -> Any:
    """A detect item of a call by dev-1 through app-1 (getOrders), for one operator's key."""
    packed = ("c", "dev-1", "app-1", "getOrders", status, "1.2.3.4", seller, "NA")
    return (ts, 2, f"c{ts}", key, packed, 0)


def case_files() -> list[Path]:
    """Every case file, sorted by detector then name."""
    return sorted(CASES_DIR.glob("*/*.json"))


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def load_case(path: Path) -> dict[str, Any]:
    """Reads one case file and checks its shape (a typo in a key must not pass silently)."""
    case = json.loads(path.read_text(encoding="utf-8"))
    where = case_id(path)
    if not isinstance(case, dict):
        raise ValueError(f"{where}: a case is a JSON object")
    if path.parent.name not in DETECTORS:
        raise ValueError(f"{where}: directory must be one of {', '.join(DETECTORS)}")
    missing = REQUIRED_CASE_KEYS - set(case)
    unknown = set(case) - CASE_KEYS
    if missing or unknown:
        raise ValueError(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    if not case["records"]:
        raise ValueError(f"{where}: no records")
    for n, exp in enumerate(case["expect"]):
        bad = set(exp) - EXPECT_KEYS
        lacking = REQUIRED_EXPECT_KEYS - set(exp)
        if bad or lacking:
            raise ValueError(
                f"{where}: expect[{n}] has unknown keys {sorted(bad)} or lacks {sorted(lacking)}"
            )
    return case


def build_config(overrides: Mapping[str, Any] | None) -> DetectorConfig:
    return DetectorConfig.from_mapping(overrides or {})


def decode_all(records: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Serialises each record object to a JSON line and decodes it like the real input."""
    return [decode_line(orjson.dumps(rec)) for rec in records]


def replay(
    decoded: Sequence[Any], config: DetectorConfig, step_every: int | None = 1
) -> tuple[dict[str, Alert], Pipeline]:
    """Feeds decoded records in the given (arrival) order.

    Args:
        decoded: Records in arrival order.
        config: Detector settings.
        step_every: Call ``step()`` after every this many records; ``None``: only at the end.

    Returns:
        The final version of every alert by ``alert_id``, and the pipeline.
    """
    pipeline = Pipeline(config)
    versions: list[Alert] = []
    for n, rec in enumerate(decoded, 1):
        pipeline.feed(rec)
        if step_every is not None and n % step_every == 0:
            versions.extend(pipeline.step())
    versions.extend(pipeline.step())
    versions.extend(pipeline.step(final=True))
    final: dict[str, Alert] = {}
    for alert in versions:
        final[alert["alert_id"]] = alert
    return final, pipeline


def _matches(exp: Mapping[str, Any], alert: Alert) -> bool:
    for key, want in exp.items():
        if key == "evidence":
            got = alert["evidence"]
            if any(k not in got or got[k] != v for k, v in want.items()):
                return False
        elif alert.get(key) != want:
            return False
    return True


def match(
    expect: Sequence[Mapping[str, Any]], alerts: Sequence[Alert]
) -> tuple[list[Mapping[str, Any]], list[Alert]]:
    """Pairs expectations with alerts one to one (a maximum bipartite matching).

    Returns:
        The expectations left without an alert, and the alerts left without an expectation.
    """
    fits = [[j for j, a in enumerate(alerts) if _matches(e, a)] for e in expect]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    unmatched = [e for i, e in enumerate(expect) if not augment(i, set())]
    extra = [a for j, a in enumerate(alerts) if j not in owner]
    return unmatched, extra


def brief(alert: Alert) -> str:
    ev = {k: v for k, v in alert["evidence"].items() if k != "event_ids"}
    return (
        f"{alert['reason']} {json.dumps(alert['subject'], sort_keys=True)} "
        f"count={alert['count']} ts={alert['ts']} first_seen={alert['first_seen']} "
        f"last_seen={alert['last_seen']} evidence={json.dumps(ev, sort_keys=True)}"
    )


def diff_report(
    missing: Sequence[Mapping[str, Any]], extra: Sequence[Alert], alerts: Sequence[Alert]
) -> str:
    lines = []
    if missing:
        lines.append("missing (expected, no matching final alert):")
        lines += [f"  - {json.dumps(e, sort_keys=True)}" for e in missing]
    if extra:
        lines.append("extra (final alert not expected):")
        lines += [f"  + {brief(a)}" for a in extra]
    lines.append(f"all final alerts of the detector ({len(alerts)}):")
    lines += [f"    {brief(a)}" for a in alerts] or ["    (none)"]
    return "\n".join(lines)


# The alert contract of aupwatch.detectors.md and the severity table of docs/semantics.md, restated
# here so that the tests do not read them from the code under test.
CLAUSES = {
    "unauthorized_seller_access": "Only act on behalf of Sellers that have granted you "
    "permission through third-party authorization.",
    "throttle_circumvention": "Do not attempt to circumvent throttling quotas through the "
    "creation of multiple Developer accounts within the same region.",
    "cross_seller_disclosure": "Do not disclose information, individually labeled or "
    "aggregated, obtained through Marketplace APIs on behalf of a Seller to other "
    "Application users or any outside parties.",
    "dormant_key": "Keys that do not make a successful call in 90 days will be deleted.",
    "credential_sharing": "Never share keys or passwords.",
    "throttle_disrespect": "Design your Application to respect per-Seller throttling quotas.",
    "internal_overreach": "Only grant access to data on a 'need-to-know' basis within your "
    "organization.",
}
SEVERITIES = {
    ("unauthorized_seller_access", "no_grant"): "high",
    ("unauthorized_seller_access", "revoked"): "high",
    ("unauthorized_seller_access", "expired"): "medium",
    ("unauthorized_seller_access", "missing_role"): "high",
    ("unauthorized_seller_access", "unauthorized_viewer"): "medium",
    ("throttle_circumvention", "shared_quota"): "medium",
    ("cross_seller_disclosure", "other_seller"): "critical",
    ("cross_seller_disclosure", "external_party"): "critical",
    ("dormant_key", "dormant_warning"): "low",
    ("dormant_key", "dormant"): "low",
    ("dormant_key", "reactivated"): "medium",
    ("dormant_key", "revoked_key_used"): "high",
    ("credential_sharing", "foreign_developer"): "high",
    ("credential_sharing", "foreign_app"): "medium",
    ("throttle_disrespect", "retry_storm"): "medium",
    ("internal_overreach", "broad_access"): "medium",
}
SUBJECT_FIELDS = {
    "unauthorized_seller_access": [
        {"app_id", "seller_id", "developer_id"},
        {"app_id", "seller_id"},  # unauthorized_viewer
    ],
    "throttle_circumvention": [{"region", "seller_id", "operation", "developer_ids"}],
    "cross_seller_disclosure": [
        {"app_id", "owner_seller_id", "viewer_type", "viewer_seller_id"},
        {"app_id", "owner_seller_id", "viewer_type", "viewer_id"},
    ],
    "dormant_key": [{"key_id", "developer_id"}],
    "credential_sharing": [
        {"key_id", "owner_developer_id", "developer_id"},
        {"key_id", "owner_developer_id", "app_id"},
    ],
    "throttle_disrespect": [{"app_id", "seller_id", "operation", "developer_id"}],
    "internal_overreach": [{"app_id", "viewer_id"}],
}
ALERT_FIELDS = {
    "alert_id",
    "detector",
    "reason",
    "severity",
    "clause",
    "ts",
    "first_seen",
    "last_seen",
    "count",
    "subject",
    "summary",
    "evidence",
}
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z\Z")


def expected_alert_id(alert: Alert) -> str:
    subject = json.dumps(
        alert["subject"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    ts = parse_ts(alert["ts"])
    raw = f"{alert['detector']}|{alert['reason']}|{subject}|{ts}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def contract_problems(alert: Alert, sample_size: int = 10) -> list[str]:
    """Ways in which one alert object breaks the alert contract (empty when it is fine)."""
    problems = []
    if set(alert) != ALERT_FIELDS:
        return [f"fields {sorted(alert)}"]
    det, reason = alert["detector"], alert["reason"]
    if SEVERITIES.get((det, reason)) != alert["severity"]:
        problems.append(f"severity {alert['severity']} for {det}/{reason}")
    if alert["clause"] != CLAUSES.get(det):
        problems.append("clause")
    if set(alert["subject"]) not in SUBJECT_FIELDS.get(det, []):
        problems.append(f"subject fields {sorted(alert['subject'])}")
    if det == "throttle_circumvention":
        ids = alert["subject"]["developer_ids"]
        if ids != sorted(set(ids)) or len(ids) < 2:
            problems.append("developer_ids not sorted distinct (>= 2)")
    times = []
    for name in ("ts", "first_seen", "last_seen"):
        text = alert[name]
        if not isinstance(text, str) or not _TIME.match(text) or text.endswith(".000000Z"):
            problems.append(f"{name} {text!r} not RFC 3339 UTC")
            return problems
        times.append(parse_ts(text))
    if not times[1] <= times[0] <= times[2]:
        problems.append("not first_seen <= ts <= last_seen")
    if type(alert["count"]) is not int or alert["count"] < 1:
        problems.append(f"count {alert['count']!r}")
    if alert["alert_id"] != expected_alert_id(alert):
        problems.append("alert_id is not sha256(detector|reason|subject|ts)[:24]")
    if (
        not isinstance(alert["summary"], str)
        or not alert["summary"]
        or "{" in alert["summary"]
        or alert["summary"] == f"{det}: {reason}"
    ):
        problems.append(f"summary {alert['summary']!r}")
    ids = alert["evidence"].get("event_ids")
    if not isinstance(ids, list) or len(ids) > sample_size or len(set(ids)) != len(ids):
        problems.append(f"evidence.event_ids {ids!r}")
    return problems

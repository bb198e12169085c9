"""The Alertmanager API v2 form of an aupwatch alert (labels, annotations, times)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aupwatch.schemas.times import US_PER_S, format_ts, parse_ts

ALERTNAME = "AupwatchBreach"
API_PATH = "/api/v2/alerts"


def rfc3339(seconds: float) -> str:
    """Seconds since the epoch as RFC 3339 UTC (the alert contract's time format)."""
    return format_ts(round(seconds * US_PER_S))


def to_alertmanager(alert: Mapping[str, Any]) -> dict[str, Any]:
    """Build the Alertmanager v2 alert (without ``endsAt``) for an aupwatch alert.

    Args:
        alert: An alert of the alert contract (``alert_id``, ``detector``, ``reason``,
            ``severity``, ``clause``, ``ts``, ``subject``, ``summary``, ...).

    Returns:
        A dict with ``labels``, ``annotations`` and ``startsAt``.

    Raises:
        KeyError: If a required field is missing.
        ValueError: If ``ts`` is not an RFC 3339 time.
    """
    subject = json.dumps(alert.get("subject", {}), sort_keys=True, separators=(",", ":"))
    annotations = {
        "summary": str(alert.get("summary", "")),
        "subject": subject,
        "alert_id": str(alert["alert_id"]),
        "clause": str(alert.get("clause", "")),
    }
    for field in ("count", "first_seen", "last_seen"):
        if alert.get(field) is not None:
            annotations[field] = str(alert[field])
    starts = parse_ts(str(alert["ts"])) / US_PER_S
    return {
        "labels": {
            "alertname": ALERTNAME,
            "detector": str(alert["detector"]),
            "reason": str(alert["reason"]),
            "severity": str(alert["severity"]),
            "alert_id": str(alert["alert_id"]),
        },
        "annotations": annotations,
        "startsAt": rfc3339(starts),
        "_starts": starts,
    }

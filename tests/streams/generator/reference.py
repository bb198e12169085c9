"""An independent reference model of docs/semantics.md for the generator's ground truth.

It recomputes the alerts of every detector but throttle_circumvention from generated
records, written apart from the generator and the detectors so that it can disagree.
Ownership retention (90 d) is not modelled: no generated access comes that long after its
fetch.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict, deque
from typing import Any

from aupwatch.detectors.config import DetectorConfig

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
OWNERSHIP_WAIT_US = 5 * MINUTE_US
DISRESPECT_WINDOW_US, MIN_THROTTLED, MIN_SHARE = 5 * MINUTE_US, 20, 0.5
OVERREACH_WINDOW_US, MAX_SELLERS = DAY_US, 25
ROLES = dict(DetectorConfig().roles)
RANK = {"key_event": 0, "authorization": 1, "api_call": 2, "data_access": 3}


def ts_us(text: str) -> int:
    if not text or (text[-1] not in "Zz" and "+" not in text[10:] and "-" not in text[10:]):
        raise ValueError("no offset")
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def key_of(detector: str, reason: str, subject: dict[str, Any]) -> tuple[str, str, str]:
    return detector, reason, json.dumps(subject, sort_keys=True)


def fold(occurrences: list[tuple[tuple[str, str, str], int]]) -> Counter[tuple[str, str, str]]:
    """Alerts per (detector, reason, subject) with the 1 h dedup window."""
    opened: dict[tuple[str, str, str], int] = {}
    alerts: Counter[tuple[str, str, str]] = Counter()
    for key, t in sorted(occurrences, key=lambda o: o[1]):
        if key not in opened or t >= opened[key] + HOUR_US:
            opened[key] = t
            alerts[key] += 1
    return alerts


def reference_alerts(recs: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """Alerts of every detector but throttle_circumvention, by docs/semantics.md."""
    occ: list[tuple[tuple[str, str, str], int]] = []
    auth: dict[tuple[str, str], dict[str, Any]] = {}
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    waiting: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    reached: list[tuple[int, str, str, set[str], str]] = []  # internal users' forwards
    per_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    key_owner: dict[str, tuple[str, str | None]] = {}
    scopes: dict[tuple[str, str, str], deque[tuple[int, bool]]] = defaultdict(deque)
    max_t = max(r["_t"] for r in recs)

    def disclose(access: dict[str, Any], rid: str, own: set[str], t: int) -> None:
        base = {"app_id": access["app_id"], "viewer_type": access["viewer_type"]}
        if access["viewer_type"] == "seller_user" and access["viewer_seller_id"] not in own:
            for x in own:
                subject = {
                    **base,
                    "owner_seller_id": x,
                    "viewer_seller_id": access["viewer_seller_id"],
                }
                occ.append((key_of("cross_seller_disclosure", "other_seller", subject), t))
        elif access["viewer_type"] == "external":
            for x in own:
                subject = {**base, "owner_seller_id": x, "viewer_id": access["viewer_id"]}
                occ.append((key_of("cross_seller_disclosure", "external_party", subject), t))
        elif access["viewer_type"] == "internal_user" and own:
            reached.append((t, access["app_id"], access["viewer_id"], own, rid))

    for r in recs:
        kind = r["kind"]
        if kind == "authorization":
            auth[(r["app_id"], r["seller_id"])] = r
        elif kind == "api_call":
            per_key[r["key_id"]].append(r)
            owner = key_owner.setdefault(r["key_id"], (r["developer_id"], r["app_id"]))
            if r["developer_id"] != owner[0]:
                subject = {
                    "key_id": r["key_id"],
                    "owner_developer_id": owner[0],
                    "developer_id": r["developer_id"],
                }
                occ.append((key_of("credential_sharing", "foreign_developer", subject), r["_t"]))
            elif owner[1] is not None and r["app_id"] != owner[1]:
                subject = {
                    "key_id": r["key_id"],
                    "owner_developer_id": owner[0],
                    "app_id": r["app_id"],
                }
                occ.append((key_of("credential_sharing", "foreign_app", subject), r["_t"]))
            calls = scopes[(r["app_id"], r["seller_id"], r["operation"])]
            calls.append((r["_t"], r["status"] == 429))
            while calls[0][0] <= r["_t"] - DISRESPECT_WINDOW_US:
                calls.popleft()
            throttled = sum(q for _, q in calls)
            if (
                r["status"] == 429
                and throttled >= MIN_THROTTLED
                and throttled >= MIN_SHARE * len(calls)
            ):
                subject = {k: r[k] for k in ("app_id", "seller_id", "operation", "developer_id")}
                occ.append((key_of("throttle_disrespect", "retry_storm", subject), r["_t"]))
            a = auth.get((r["app_id"], r["seller_id"]))
            reason = None
            if a is None:
                reason = "no_grant"
            elif a["action"] == "revoke":
                reason = "revoked"
            elif "expires_at" in a and ts_us(a["expires_at"]) <= r["_t"]:
                reason = "expired"
            elif r["operation"] in ROLES and ROLES[r["operation"]] not in a.get("roles", []):
                reason = "missing_role"
            if reason:
                subject = {k: r[k] for k in ("app_id", "seller_id", "developer_id")}
                occ.append((key_of("unauthorized_seller_access", reason, subject), r["_t"]))
            if 200 <= r["status"] < 300:
                for rid in r.get("resource_ids", []):
                    own = owners[(r["app_id"], rid)]
                    if r["seller_id"] in own:
                        continue
                    own.add(r["seller_id"])
                    # accesses that found no owner are judged against a new one within the wait
                    for access in waiting.pop((r["app_id"], rid), []):
                        if access["_t"] + OWNERSHIP_WAIT_US >= r["_t"]:
                            disclose(access, rid, {r["seller_id"]}, r["_t"])
                            waiting[(r["app_id"], rid)].append(access)
        elif kind == "data_access":
            if r["viewer_type"] == "seller_user":
                a = auth.get((r["app_id"], r["viewer_seller_id"]))
                if (
                    a is None
                    or a["action"] == "revoke"
                    or ("expires_at" in a and ts_us(a["expires_at"]) <= r["_t"])
                ):
                    subject = {"app_id": r["app_id"], "seller_id": r["viewer_seller_id"]}
                    occ.append(
                        (
                            key_of("unauthorized_seller_access", "unauthorized_viewer", subject),
                            r["_t"],
                        )
                    )
            for rid in r["resource_ids"]:
                own = set(owners.get((r["app_id"], rid), set()))
                if own:
                    disclose(r, rid, own, r["_t"])
                else:
                    waiting[(r["app_id"], rid)].append(r)
        else:
            per_key[r["key_id"]].append(r)
            if r["action"] == "created" or r["key_id"] not in key_owner:
                key_owner[r["key_id"]] = (r["developer_id"], r.get("app_id"))
    occ.extend(_overreach(reached))
    for key_id, events in per_key.items():
        occ.extend(_dormancy(key_id, events, max_t))
    return fold(occ)


def _overreach(
    reached: list[tuple[int, str, str, set[str], str]],
) -> list[tuple[tuple[str, str, str], int]]:
    """broad_access occurrences of internal users' (access, resource) forwards."""
    occ: list[tuple[tuple[str, str, str], int]] = []
    windows: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for t, app, viewer, sellers, _rid in sorted(reached, key=lambda f: f[0]):
        window = [e for e in windows[(app, viewer)] if e[0] > t - OVERREACH_WINDOW_US]
        before = {s for _, s in window}
        window.extend((t, s) for s in sellers)
        windows[(app, viewer)] = window
        if sellers - before and len(before | sellers) >= MAX_SELLERS:
            subject = {"app_id": app, "viewer_id": viewer}
            occ.append((key_of("internal_overreach", "broad_access", subject), t))
    return occ


def _dormancy(
    key_id: str, events: list[dict[str, Any]], max_t: int
) -> list[tuple[tuple[str, str, str], int]]:
    """dormant_key occurrences of one key's events (in decision order)."""
    occ: list[tuple[tuple[str, str, str], int]] = []
    dev = next(
        (e["developer_id"] for e in events if e["kind"] == "key_event"),
        events[0]["developer_id"],
    )
    subject = {"key_id": key_id, "developer_id": dev}
    clock = None
    warned = dormant = dead = False
    for e in [*events, {"kind": "end", "_t": max_t}]:
        t = e["_t"]
        if clock is not None and not dead:
            if not warned and clock + 60 * DAY_US <= t:
                warned = True
                occ.append((key_of("dormant_key", "dormant_warning", subject), clock + 60 * DAY_US))
            if not dormant and clock + 90 * DAY_US <= t:
                dormant = True
                occ.append((key_of("dormant_key", "dormant", subject), clock + 90 * DAY_US))
        if e["kind"] == "key_event":
            if e["action"] in ("revoked", "deleted"):
                dead = True
            else:
                clock = t if clock is None else max(clock, t)
        elif e["kind"] == "api_call":
            if dead:
                occ.append((key_of("dormant_key", "revoked_key_used", subject), t))
                continue
            if dormant:
                occ.append((key_of("dormant_key", "reactivated", subject), t))
            if clock is None:  # first seen in a call: the call is its creation
                clock = t
            if 200 <= e["status"] < 300:
                clock, warned, dormant = t, False, False
    return occ

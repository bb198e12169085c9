"""Generated marketplace traffic for bench/soak.py: a churning population, in event order.

Records are produced one at a time at the event time asked for, so the caller sets the
pace and the speed of event time. Nothing is random beyond the seed.
"""

from __future__ import annotations

import random
import time
from collections import deque

import orjson

ORIGIN_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY_MS = 86_400_000
REGIONS = ("NA", "EU", "FE")
OPS = ("getOrders", "getOrder", "getOrderItems", "getListingsRestrictions", "getCatalogItem")
ROLE_OPS = ("getOrderAddress", "getReport")
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def fmt_ts(ms: int) -> str:
    """RFC 3339 UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class Traffic:
    """Ordinary marketplace traffic with churn, one record at a time in event order.

    A steady population: 3,000 sellers and 400 apps, each replaced by a new one when it
    dies. Sellers live ~120 days, apps ~200 days (exponential lifetimes); an app holds
    3-30 grants (about 6,400 in all) and replaces the grant of a seller that died (a
    revoke, then a grant to another seller); it rotates its key every ~45 days (the old key
    is revoked, or for one app in three just abandoned, so it goes dormant); a developer
    moves to a new address every ~20 days; every fetched order is a new resource id, read
    back later by a user of its own seller (or the app's staff). About 2 % of records
    check one seller and one app for these events.

    Measured per event day at steady state (days 100-130, seed 11, 12,000 records a day
    as in the soak): 10,460 calls (94 % 2xx, 3 % 429) and 1,360 data accesses; 22 sellers
    and 1.8 apps replaced; 98 grants and 66 revokes; 10 keys created, 5.5 revoked. So the
    pairs ever authorized grow by ~100 a day and the keys ever seen by ~10 a day: the
    states the rules keep forever grow with them.
    """

    def __init__(self, seed: int, sellers: int = 3000, apps: int = 400) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.sellers: list[list[object]] = []  # [id, region, users, dies_at]
        self.apps: list[dict[str, object]] = []
        self.pending: deque[bytes] = deque()
        for _ in range(sellers):
            self.sellers.append(self._seller(ORIGIN_MS))
        for _ in range(apps):
            self.apps.append(self._app(ORIGIN_MS))

    def _id(self, prefix: str, k: int = 12) -> str:
        return prefix + "".join(self.rng.choices(ALNUM, k=k))

    def _seller(self, now: int) -> list[object]:
        rng = self.rng
        sid = self._id("A")
        users = [f"{sid}-u{i}" for i in range(rng.randint(1, 4))]
        return [sid, rng.choice(REGIONS), users, now + int(rng.expovariate(1 / 120) * DAY_MS)]

    def _app(self, now: int) -> dict[str, object]:
        rng = self.rng
        dev = self._id("dev-", 8)
        app: dict[str, object] = {
            "id": self._id("amzn1.app.", 10),
            "dev": dev,
            "ua": f"client-{dev}/1.{rng.randint(0, 9)}",
            "ips": [self._ip() for _ in range(rng.randint(1, 3))],
            "staff": [f"{dev}-staff{i}" for i in range(2)],
            "key": "",
            "rotate_at": 0,
            "move_at": now + int(rng.expovariate(1 / 20) * DAY_MS),
            "dies_at": now + int(rng.expovariate(1 / 200) * DAY_MS),
            "grants": {},  # seller id -> seller
            "recent": deque(maxlen=50),  # (resource id, seller) fetched lately
        }
        self._rotate(app, now)
        for _ in range(rng.randint(3, 30)):
            self._grant(app, now)
        return app

    def _ip(self) -> str:
        r = self.rng.getrandbits(24)
        return f"10.{r >> 16}.{(r >> 8) & 255}.{r & 255 or 1}"

    def _emit(self, rec: dict[str, object]) -> None:
        self.n += 1
        rec["event_id"] = f"s{self.n}"
        self.pending.append(orjson.dumps(rec))

    def _rotate(self, app: dict[str, object], now: int) -> None:
        old, key = str(app["key"]), self._id("AKIA", 16)
        base = {"ts": fmt_ts(now), "developer_id": app["dev"], "app_id": app["id"]}
        self._emit({"kind": "key_event", "key_id": key, "action": "created", **base})
        if old and self.rng.random() < 0.67:
            self._emit({"kind": "key_event", "key_id": old, "action": "revoked", **base})
        app["key"] = key
        app["rotate_at"] = now + int(self.rng.expovariate(1 / 45) * DAY_MS)

    def _grant(self, app: dict[str, object], now: int) -> None:
        seller = self.sellers[int(self.rng.random() * len(self.sellers))]
        grants: dict[str, list[object]] = app["grants"]  # type: ignore[assignment]
        grants[str(seller[0])] = seller
        self._emit(
            {
                "kind": "authorization",
                "ts": fmt_ts(now),
                "app_id": app["id"],
                "seller_id": seller[0],
                "action": "grant",
                "roles": ["pii", "reports"],
                "developer_id": app["dev"],
            }
        )

    def _churn(self, now: int) -> None:
        rng = self.rng
        i = int(rng.random() * len(self.sellers))
        if self.sellers[i][3] <= now:  # type: ignore[operator]
            self.sellers[i] = self._seller(now)
        j = int(rng.random() * len(self.apps))
        app = self.apps[j]
        if app["dies_at"] <= now:  # type: ignore[operator]
            self.apps[j] = self._app(now)
            return
        if app["rotate_at"] <= now:  # type: ignore[operator]
            self._rotate(app, now)
        if app["move_at"] <= now:  # type: ignore[operator]
            ips: list[str] = app["ips"]  # type: ignore[assignment]
            ips[int(rng.random() * len(ips))] = self._ip()
            app["move_at"] = now + int(rng.expovariate(1 / 20) * DAY_MS)
        grants: dict[str, list[object]] = app["grants"]  # type: ignore[assignment]
        for sid in [s for s, seller in grants.items() if seller[3] <= now]:  # type: ignore[operator]
            del grants[sid]
            self._emit(
                {
                    "kind": "authorization",
                    "ts": fmt_ts(now),
                    "app_id": app["id"],
                    "seller_id": sid,
                    "action": "revoke",
                    "developer_id": app["dev"],
                }
            )
            self._grant(app, now)
        if not grants:
            self._grant(app, now)

    def next(self, now: int) -> bytes:
        """The next record at event time ``now`` (ms)."""
        if self.pending:
            return self.pending.popleft()
        rng = self.rng
        r = rng.random()
        if r < 0.02:
            self._churn(now)
            if self.pending:
                return self.pending.popleft()
        app = self.apps[int(rng.random() * len(self.apps))]
        grants: dict[str, list[object]] = app["grants"]  # type: ignore[assignment]
        recent: deque[tuple[str, list[object]]] = app["recent"]  # type: ignore[assignment]
        ts = fmt_ts(now)
        if r < 0.12 and recent:
            rid, seller = recent[int(rng.random() * len(recent))]
            internal = rng.random() < 0.2
            staff: list[str] = app["staff"]  # type: ignore[assignment]
            users: list[str] = seller[2]  # type: ignore[assignment]
            rec: dict[str, object] = {
                "kind": "data_access",
                "ts": ts,
                "app_id": app["id"],
                "resource_ids": [rid],
                "viewer_type": "internal_user" if internal else "seller_user",
                "viewer_id": rng.choice(staff) if internal else rng.choice(users),
                "channel": "ui",
            }
            if not internal:
                rec["viewer_seller_id"] = seller[0]
            self._emit(rec)
            return self.pending.popleft()
        stranger = r > 0.996  # a call for a seller that never granted this app: an alert
        seller = (
            self.sellers[int(rng.random() * len(self.sellers))]
            if stranger
            else list(grants.values())[int(rng.random() * len(grants))]
        )
        s = rng.random()
        status = 200 if s < 0.94 else 429 if s < 0.97 else 500 if s < 0.985 else 404
        op = rng.choice(ROLE_OPS) if s > 0.995 else OPS[int(rng.random() * len(OPS))]
        ips: list[str] = app["ips"]  # type: ignore[assignment]
        rec = {
            "kind": "api_call",
            "ts": ts,
            "region": seller[1],
            "developer_id": app["dev"],
            "app_id": app["id"],
            "key_id": app["key"],
            "seller_id": seller[0],
            "operation": op,
            "status": status,
            "source_ip": ips[int(rng.random() * len(ips))],
            "user_agent": app["ua"],
        }
        if op == "getOrder" and status == 200:
            rid = f"{rng.randint(100, 999)}-{rng.getrandbits(40):013d}"
            rec["resource_ids"] = [rid]
            recent.append((rid, seller))
        self._emit(rec)
        return self.pending.popleft()

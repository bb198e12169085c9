"""Entities and record emission of the synthetic log generator, and the background's rules.

The background is built so that it yields no alert under docs/semantics.md:
- every (app, seller) pair is granted, with the roles its operations need, at least two
  minutes before its first call, and is never called after a revoke;
- every developer account calls only from addresses and with user agents of its own, so
  accounts never link (by address, nor by user agent when that is configured);
- resources are shown only to users of the seller they were fetched for, or to staff;
- every key gets a successful call at most ~42 days apart (heartbeats) while it is in use,
  and a key that is rotated out is revoked a few days after its last use.
"""

from __future__ import annotations

from random import Random
from typing import Any

from aupwatch.streams.generator.entities import (
    ALNUM,
    DAY_MS,
    HEARTBEAT_OP,
    HOUR_MS,
    KIND_ROLES,
    MINUTE_MS,
    REGIONS,
    STACKS,
    VENDORS,
    App,
    Dev,
    Seller,
    dumps,
    make_ts_formatter,
    parse_rfc3339_ms,
)


class World:
    """Holds the entities and the emitted lines with their shuffle sort keys."""

    def __init__(self, cfg: Any, rng: Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self.start = parse_rfc3339_ms(cfg.start)
        self.end = self.start + int(cfg.days * DAY_MS)
        self.span = self.end - self.start
        self.fmt = make_ts_formatter(self.start)
        self.shuffle_ms = max(0, round(cfg.shuffle_seconds * 1000))
        self.lines: list[bytes] = []
        self.keys: list[int] = []
        self.n_ev = 0
        self.max_ts = self.start
        self.n_res = 0
        self.n_ip = 0
        self.tracked: dict[str, list[tuple[int, int, str, int]]] = {}
        self.sellers: list[Seller] = []
        self.devs: list[Dev] = []
        self.apps: list[App] = []
        self.pairs: list[tuple[App, Seller, int, int]] = []
        # for the truth of unauthorized_viewer: (app, seller) -> [(ts, event id, action,
        # expires_at)], and accesses by seller users emitted here: (ts, app, seller)
        self.auth_log: dict[tuple[str, str], list[tuple[int, str, str, int | None]]] = {}
        self.viewer_log: list[tuple[int, str, str]] = []

    # ---- identifiers -------------------------------------------------------------------
    def eid(self) -> str:
        """A new unique event id."""
        self.n_ev += 1
        return f"e{self.n_ev}"

    def order_id(self) -> str:
        """A new unique order id."""
        self.n_res += 1
        c = self.n_res
        return f"{111 + c % 9:03d}-{c * 2654435761 % 10_000_000:07d}-{c:07d}"

    def res_id(self, prefix: str) -> str:
        """A new unique resource id with a prefix."""
        self.n_res += 1
        return f"{prefix}{10_000_000 + self.n_res}"

    def new_ip(self, block: str = "bg") -> str:
        """A new address nobody used before (background, IPv6 or injected block)."""
        self.n_ip += 1
        n = self.n_ip
        if block == "bg":
            return f"198.{18 + (n >> 16) % 2}.{(n >> 8) & 255}.{n & 255 or 1}"
        if block == "v6":
            return f"2001:db8:{n >> 16:x}::{n & 0xFFFF or 1:x}"
        return f"203.0.{113 + (n >> 8) % 8}.{n & 255 or 1}"

    def key_id(self) -> str:
        """A new access key id."""
        return "AKIA" + "".join(self.rng.choices(ALNUM, k=16))

    def uniform_ts(self, lo_frac: float, hi_frac: float) -> int:
        """A uniform random time between two fractions of the span."""
        return int(self.start + int(self.span * self.rng.uniform(lo_frac, hi_frac)))

    # ---- emission ----------------------------------------------------------------------
    def put(self, ts: int, line: bytes, sort_key: int | None = None) -> None:
        """Adds one line, placed at a random point within the shuffle after ``ts``."""
        if sort_key is None:
            sort_key = ts + int(self.rng.random() * (self.shuffle_ms + 1))
        self.lines.append(line)
        self.keys.append(sort_key)
        if ts > self.max_ts:
            self.max_ts = ts

    def call(
        self,
        ts: int,
        app: App,
        seller: Seller,
        op: str,
        status: int = 200,
        key_id: str | None = None,
        ip: str | None = None,
        resources: list[str] | None = None,
        sort_key: int | None = None,
        ua: str | None = None,
    ) -> str:
        """Emits an ``api_call`` (``ua`` replaces the app's own user agent)."""
        rng = self.rng
        if key_id is None:
            key_id = app.key_at(ts)
        eid = self.eid()
        rec: dict[str, Any] = {
            "event_id": eid,
            "kind": "api_call",
            "ts": self.fmt(ts),
            "region": seller.region,
            "developer_id": app.dev.id,
            "app_id": app.id,
            "key_id": key_id,
            "seller_id": seller.id,
            "operation": op,
            "status": status,
            "source_ip": ip or rng.choice(app.dev.ips),
            "user_agent": ua or app.ua,
        }
        if resources:
            rec["resource_ids"] = resources
        rec["latency_ms"] = 40 + int(rng.random() * 600)
        self.put(ts, dumps(rec), sort_key)
        track = self.tracked.get(key_id)
        if track is not None:
            track.append((ts, 2, "call", status))
        return eid

    def auth(
        self,
        ts: int,
        app: App,
        seller: Seller,
        action: str = "grant",
        roles: list[str] | bool | None = True,
        expires_at: int | None = None,
        sort_key: int | None = None,
    ) -> str:
        """Emits an ``authorization`` (roles ``True`` = the app's own roles)."""
        eid = self.eid()
        rec: dict[str, Any] = {
            "event_id": eid,
            "kind": "authorization",
            "ts": self.fmt(ts),
            "app_id": app.id,
            "seller_id": seller.id,
            "action": action,
        }
        if action == "grant":
            granted: list[str] | None = app.roles if roles is True else roles or None
            if granted:
                rec["roles"] = list(granted)
            if expires_at is not None:
                rec["expires_at"] = self.fmt(expires_at)
        rec["developer_id"] = app.dev.id
        self.put(ts, dumps(rec), sort_key)
        expires = expires_at if action == "grant" else None
        self.auth_log.setdefault((app.id, seller.id), []).append((ts, eid, action, expires))
        return eid

    def access(
        self,
        ts: int,
        app: App,
        resources: list[str],
        viewer_type: str,
        viewer_id: str,
        viewer_seller: Seller | None = None,
        channel: str = "ui",
        sort_key: int | None = None,
    ) -> str:
        """Emits a ``data_access``."""
        eid = self.eid()
        rec: dict[str, Any] = {
            "event_id": eid,
            "kind": "data_access",
            "ts": self.fmt(ts),
            "app_id": app.id,
            "resource_ids": resources,
            "viewer_type": viewer_type,
            "viewer_id": viewer_id,
        }
        if viewer_seller is not None:
            rec["viewer_seller_id"] = viewer_seller.id
            if viewer_type == "seller_user":
                self.viewer_log.append((ts, app.id, viewer_seller.id))
        rec["channel"] = channel
        self.put(ts, dumps(rec), sort_key)
        return eid

    def key_event(self, ts: int, key_id: str, app: App, action: str) -> str:
        """Emits a ``key_event``."""
        eid = self.eid()
        rec = {
            "event_id": eid,
            "kind": "key_event",
            "ts": self.fmt(ts),
            "key_id": key_id,
            "developer_id": app.dev.id,
            "app_id": app.id,
            "action": action,
            "schema_version": 1,
        }
        self.put(ts, dumps(rec))
        track = self.tracked.get(key_id)
        if track is not None:
            track.append((ts, 0, action, 0))
        return eid

    # ---- entities ----------------------------------------------------------------------
    def build(self, budget: int) -> None:
        """Create sellers, developers, apps, keys, grants, rotations and heartbeats."""
        cfg, rng = self.cfg, self.rng
        seen: set[str] = set()
        for _ in range(cfg.sellers):
            while True:
                sid = "A" + "".join(rng.choices(ALNUM, k=rng.choice((12, 13))))
                if sid not in seen:
                    break
            seen.add(sid)
            region = rng.choices(REGIONS, weights=(6, 3, 1))[0]
            users = [f"amzn1.account.{sid[1:9]}.u{u}" for u in range(rng.randint(1, 4))]
            self.sellers.append(Seller(sid, region, users, rng.paretovariate(1.5)))
        for i in range(cfg.developers):
            did = f"dev-{1000 + i * 7 + rng.randrange(7):05d}"
            block = "v6" if rng.random() < 0.15 else "bg"
            ips = [self.new_ip(block) for _ in range(rng.choice((1, 1, 2, 3)))]
            staff = [f"staff-{did[4:]}-{n}" for n in range(rng.randint(1, 3))]
            dev = Dev(did, ips, staff)
            self.devs.append(dev)
            vendor = rng.choice(VENDORS)
            for _ in range(rng.choices((1, 2, 3), weights=(70, 25, 5))[0]):
                kinds = rng.sample(list(KIND_ROLES), rng.choice((1, 1, 2)))
                roles = sorted({r for k in kinds for r in KIND_ROLES[k]})
                if set(roles) <= {"listings", "finance"} and rng.random() < 0.5:
                    roles_opt: list[str] | None = None  # grant without roles: none needed
                else:
                    roles_opt = roles
                version = f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
                ua = f"{vendor}/{version} ({rng.choice(STACKS)})"
                late = rng.random() < 0.2
                start = self.uniform_ts(0.1, 0.5) if late else self.start + rng.randrange(DAY_MS)
                aid = f"sp-app-{rng.getrandbits(40):010x}"
                app = App(aid, dev, kinds, roles_opt, ua, start, rng.paretovariate(1.2))
                dev.apps.append(app)
                self.apps.append(app)
        agents: dict[str, Dev] = {}
        for app in self.apps:  # an agent of one developer only: no links by user agent
            if agents.setdefault(app.ua, app.dev) is not app.dev:
                app.ua = f"{app.ua} build/{app.id[-6:]}"
                agents[app.ua] = app.dev
        self._keys_and_pairs(budget)

    def _keys_and_pairs(self, budget: int) -> None:
        rng, end = self.rng, self.end
        max_per_app = max(1, len(self.sellers) // 2)
        want_pairs = max(len(self.apps), min(budget // 40, len(self.apps) * max_per_app))
        total_w = sum(a.weight for a in self.apps)
        for app in self.apps:
            # keys: one from the start; some apps rotate to a new key midway
            first = self.key_id()
            if rng.random() < 0.7:
                self.key_event(app.start, first, app, "created")
            rotate = rng.random() < 0.25 and end - app.start > 20 * DAY_MS
            if rotate:
                tr = app.start + int((end - app.start) * rng.uniform(0.3, 0.8))
                second = self.key_id()
                app.keys = [(first, app.start, tr), (second, tr, end + DAY_MS)]
                self.key_event(tr, second, app, "created")
                self.key_event(
                    tr + rng.randint(DAY_MS, 3 * DAY_MS),
                    first,
                    app,
                    rng.choice(("revoked", "revoked", "deleted")),
                )
            else:
                app.keys = [(first, app.start, end + DAY_MS)]
            # pairs: the primary seller, granted five minutes after the app starts
            n = round(want_pairs * app.weight / total_w)
            n = max(1, min(max_per_app, n))
            chosen = rng.sample(self.sellers, n)
            for idx, seller in enumerate(chosen):
                if idx == 0:
                    g = app.start + 5 * MINUTE_MS
                    app.primary = seller
                elif rng.random() < 0.6 or end - app.start < 2 * DAY_MS:
                    g = app.start + rng.randint(10 * MINUTE_MS, 3 * DAY_MS)
                else:
                    g = rng.randint(app.start, max(app.start, end - DAY_MS))
                hi = end
                if idx > 0 and rng.random() < 0.05 and end - g > 3 * DAY_MS:
                    revoke = rng.randint(g + DAY_MS, end - DAY_MS)
                    self.auth(revoke, app, seller, "revoke")
                    hi = revoke - 15 * MINUTE_MS
                t = g
                while t < hi:  # public apps are re-authorized before the 365-day expiry
                    self.auth(t, app, seller, "grant", expires_at=t + 365 * DAY_MS)
                    t += 330 * DAY_MS
                app.sellers.append(seller)
                app.taken.add(seller.id)
                lo = g + 2 * MINUTE_MS
                if hi - lo > 15 * MINUTE_MS:
                    self.pairs.append((app, seller, lo, hi - 10 * MINUTE_MS))
            # heartbeats: a successful call at most ~42 days apart while each key is in use
            for key_id, lo, hi in app.keys:
                t = lo + rng.randint(HOUR_MS, 2 * DAY_MS)
                while t < min(hi, end):
                    self.call(t, app, app.primary, HEARTBEAT_OP, 200, key_id=key_id)
                    t += rng.randint(25 * DAY_MS, 40 * DAY_MS)

    def free_sellers(self, apps: list[App], k: int) -> list[Seller] | None:
        """``k`` sellers none of ``apps`` has any pair with (then reserved), or None."""
        pool = [s for s in self.sellers if all(s.id not in a.taken for a in apps)]
        if len(pool) < k:
            return None
        chosen = self.rng.sample(pool, k)
        for a in apps:
            a.taken.update(s.id for s in chosen)
        return chosen

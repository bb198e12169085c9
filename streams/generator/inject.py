"""Injected breaches and hard negatives of the synthetic log generator, with ground truth.

Every breach is placed on a subject of its own and keeps all of its occurrences within
30 minutes, so it yields exactly one alert per (detector, reason, subject) under
docs/semantics.md (dedup window 1 h). Dormancy alerts are not placed by hand: each key
that takes part is simulated with the rules of docs/semantics.md once the largest event
time of the file is known (replay flushes the watermark to it at the end of input).
"""

from __future__ import annotations

from typing import Any

from aupwatch.streams.generator.entities import (
    DAY_MS,
    DEFAULT_PLAN,
    HEARTBEAT_OP,
    HOUR_MS,
    MINUTE_MS,
    PLANS,
    SECOND_MS,
    App,
    Seller,
)
from aupwatch.streams.generator.viewers import inject_viewers, viewer_truth
from aupwatch.streams.generator.world import World

PER_REASON = 3
WARN_AFTER = 60 * DAY_MS
DORMANT_AFTER = 90 * DAY_MS
DEDUP_WINDOW = HOUR_MS
MIN_EXCESS = 5


def simulate_key(events: list[tuple[int, int, str, int]], max_ts: int) -> list[tuple[str, int]]:
    """dormant_key occurrences of one key, as (reason, ts), by docs/semantics.md."""
    occ: list[tuple[str, int]] = []
    clock: int | None = None
    warned = dormant = dead = False
    for ts, _rank, what, status in [*sorted(events), (max_ts, 9, "end", 0)]:
        if clock is not None and not dead:  # timers due at or before ts fire first
            if not warned and clock + WARN_AFTER <= ts:
                occ.append(("dormant_warning", clock + WARN_AFTER))
                warned = True
            if not dormant and clock + DORMANT_AFTER <= ts:
                occ.append(("dormant", clock + DORMANT_AFTER))
                dormant = True
        if what in ("created", "rotated"):
            clock = ts if clock is None else max(clock, ts)
        elif what in ("revoked", "deleted"):
            dead = True
        elif what == "call":
            if dead:
                occ.append(("revoked_key_used", ts))
                continue
            if dormant:
                occ.append(("reactivated", ts))
            if clock is None:  # a key first seen in a call: the call is its creation
                clock = ts
            if 200 <= status < 300:
                clock = ts
                warned = dormant = False
    return occ


def fold(occ: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Fold occurrences of one subject into alerts (reason, alert ts) with the 1 h window."""
    opened: dict[str, int] = {}
    alerts: list[tuple[str, int]] = []
    for reason, ts in sorted(occ, key=lambda o: o[1]):
        first = opened.get(reason)
        if first is None or ts >= first + DEDUP_WINDOW:
            opened[reason] = ts
            alerts.append((reason, ts))
    return alerts


class Injector:
    """Injects the breaches and hard negatives into a ``World`` and keeps their truth."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.rng = world.rng
        self.truth: list[dict[str, Any]] = []
        self.dormancy_keys: dict[str, str] = {}  # key_id -> developer_id
        self.cases: list[dict[str, Any]] = []  # what was injected (breaches and negatives)

    # ---- helpers -----------------------------------------------------------------------
    def expect(self, detector: str, reason: str, subject: dict[str, Any]) -> None:
        """Adds one expected alert to the truth."""
        self.truth.append({"detector": detector, "reason": reason, "subject": subject})

    def note(self, case: str, **info: Any) -> None:
        """Records an injected case (for tests and debugging)."""
        self.cases.append({"case": case, **info})

    def at(self, lead: int = 3 * DAY_MS) -> int:
        """A random time at least ``lead`` after the start and a day before the end."""
        w = self.w
        return int(w.start + lead + int(self.rng.random() * max(0, w.span - lead - DAY_MS)))

    def app_at(self, t: int, exclude: tuple[App, ...] = (), age: int = DAY_MS) -> App:
        """A random app of another developer than ``exclude``'s, started ``age`` before ``t``."""
        ready = [
            a
            for a in self.w.apps
            if a.start + age <= t and all(a.dev is not e.dev for e in exclude)
        ]
        if not ready:
            ready = [
                a for a in self.w.apps if a.start < t and all(a.dev is not e.dev for e in exclude)
            ]
        return self.rng.choice(ready)

    def pick(
        self, t: int, n_apps: int = 1, n_sellers: int = 1, age: int = DAY_MS
    ) -> tuple[list[App], list[Seller]]:
        """Apps of distinct developers and sellers none of them has a pair with."""
        for _ in range(200):
            apps: list[App] = []
            for _ in range(n_apps):
                apps.append(self.app_at(t, tuple(apps), age))
            sellers = self.w.free_sellers(apps, n_sellers)
            if sellers is not None:
                return apps, sellers
        raise ValueError("not enough sellers for the injected cases; raise sellers")

    def new_key(self, app: App, created: int) -> str:
        """Creates a key whose dormancy alerts are simulated at the end."""
        key_id = self.w.key_id()
        self.w.tracked[key_id] = []
        self.dormancy_keys[key_id] = app.dev.id
        self.w.key_event(created, key_id, app, "created")
        return str(key_id)

    # ---- all cases ---------------------------------------------------------------------
    def run(self) -> None:
        """Injects every breach and negative."""
        self.unauthorized()
        self.throttle()
        self.disclosure()
        self.dormancy()

    def after_background(self) -> None:
        """Injects the cases added after the background was (so the earlier ids stay)."""
        inject_viewers(self, PER_REASON)

    def finish(self, max_ts: int) -> list[dict[str, Any]]:
        """Completes the truth once the largest event time is known."""
        for key_id, dev_id in self.dormancy_keys.items():
            occ = simulate_key(self.w.tracked[key_id], max_ts)
            for reason, _ts in fold(occ):
                self.expect("dormant_key", reason, {"key_id": key_id, "developer_id": dev_id})
        for subject, _ts in viewer_truth(self.w):
            self.expect("unauthorized_seller_access", "unauthorized_viewer", subject)
        return self.truth

    # ---- 1. unauthorized_seller_access -------------------------------------------------
    def unauthorized(self) -> None:
        """no_grant, revoked, expired, missing_role; grant-order negatives."""
        w, rng = self.w, self.rng
        for reason in ("no_grant", "revoked", "expired", "missing_role"):
            for i in range(PER_REASON):
                t = self.at(21 * DAY_MS)
                (app,), (seller,) = self.pick(t, age=21 * DAY_MS)
                if reason == "revoked":
                    g = t - rng.randint(3 * DAY_MS, 8 * DAY_MS)
                    w.auth(g, app, seller, "grant")
                    w.call(g + HOUR_MS, app, seller, "getOrders", 200)
                    w.auth(t - rng.randint(2 * HOUR_MS, 2 * DAY_MS), app, seller, "revoke")
                elif reason == "expired":
                    g = t - rng.randint(10 * DAY_MS, 20 * DAY_MS)
                    w.auth(g, app, seller, "grant", expires_at=t - rng.randint(HOUR_MS, DAY_MS))
                    w.call(g + HOUR_MS, app, seller, "getOrders", 200)
                elif reason == "missing_role":
                    g = t - rng.randint(HOUR_MS, 5 * DAY_MS)
                    roles = (["orders"], None, ["orders", "pii"])[i % 3]
                    w.auth(g, app, seller, "grant", roles=roles, expires_at=g + 365 * DAY_MS)
                    w.call(g + 10 * MINUTE_MS, app, seller, "getOrders", 200)
                ops = {"missing_role": ("getOrderAddress", "getOrderBuyerInfo", "getReport")}
                for n in range(rng.randint(1, 4)):
                    op = (
                        ops[reason][i % 3]
                        if reason in ops
                        else rng.choice(("getOrders", "getOrder", "getOrderItems"))
                    )
                    status = (
                        rng.choice((200, 403))
                        if reason == "no_grant"
                        else rng.choice((200, 200, 403))
                    )
                    res = [w.order_id()] if status == 200 and reason != "missing_role" else None
                    w.call(
                        t + n * rng.randint(SECOND_MS, 8 * MINUTE_MS),
                        app,
                        seller,
                        op,
                        status,
                        resources=res,
                    )
                subject = {"app_id": app.id, "seller_id": seller.id, "developer_id": app.dev.id}
                self.expect("unauthorized_seller_access", reason, subject)
                self.note("unauthorized_" + reason, subject=subject)
        # negatives: grant a few seconds before the first call but delivered after it;
        # re-grant after a revoke; a call while a dated grant is still valid
        for _ in range(PER_REASON):
            t = self.at()
            (app,), (seller,) = self.pick(t)
            s = w.shuffle_ms
            if s >= 4 * SECOND_MS:
                w.call(t + s * 3 // 10, app, seller, "getOrders", 200, sort_key=t + s * 3 // 10)
                w.auth(t, app, seller, "grant", sort_key=t + s * 9 // 10)
            else:
                w.auth(t, app, seller, "grant")
                w.call(t + 2 * SECOND_MS, app, seller, "getOrders", 200)
            w.call(t + 5 * MINUTE_MS, app, seller, "getOrders", 200)
            self.note("negative_grant_delivered_after_call", app_id=app.id, seller_id=seller.id)
            t = self.at()
            (app,), (seller,) = self.pick(t)
            w.auth(t - 2 * DAY_MS, app, seller, "grant")
            w.auth(t - DAY_MS, app, seller, "revoke")
            w.auth(t - HOUR_MS, app, seller, "grant", expires_at=t + HOUR_MS)
            w.call(t, app, seller, "getOrders", 200)
            self.note("negative_regrant_after_revoke", app_id=app.id, seller_id=seller.id)

    # ---- 2. throttle_circumvention -----------------------------------------------------
    def throttle(self) -> None:
        """shared_quota groups; unrelated vendors and stale shared addresses."""
        w, rng = self.w, self.rng
        # (operation, accounts, calls per account, spread of the calls in seconds)
        plans = [
            ("getOrders", 2, 18, 180),
            ("getOrders", 3, 15, 240),
            ("createRestrictedDataToken", 3, 12, 8),
            ("getOrder", 2, 28, 20),
        ]
        for op, n_acc, per, spread in plans:
            t = self.at()
            apps, (seller,) = self.pick(t, n_acc)
            shared = w.new_ip("shared")
            for app in apps:
                w.auth(
                    t - rng.randint(HOUR_MS, 2 * DAY_MS),
                    app,
                    seller,
                    "grant",
                    roles=["orders", "pii"],
                )
            calls = [(t + k * 2 * SECOND_MS, a) for k, a in enumerate(apps)]
            for app in apps:
                for _ in range(per - 1):
                    calls.append((t + 10 * SECOND_MS + rng.randint(0, spread * SECOND_MS), app))
            calls.sort(key=lambda c: c[0])
            for ts, app in calls:
                w.call(
                    ts,
                    app,
                    seller,
                    op,
                    200,
                    ip=shared,
                    resources=[w.order_id()] if op != "createRestrictedDataToken" else None,
                )
            excess = self._excess(op, [ts for ts, _ in calls][1:])
            if excess < MIN_EXCESS + 3:
                raise AssertionError(f"throttle case too weak: {excess} excess calls")
            devs = sorted(a.dev.id for a in apps)
            subject = {
                "region": seller.region,
                "seller_id": seller.id,
                "operation": op,
                "developer_ids": devs,
            }
            self.expect("throttle_circumvention", "shared_quota", subject)
            self.note(
                "throttle_shared_quota", subject=subject, shared_ip=shared, excess_calls=excess
            )
        # negative: two unrelated vendors serve one seller+operation at a high combined
        # rate, each from its own addresses, each within the plan
        for _ in range(2):
            t = self.at()
            (a, b), (seller,) = self.pick(t, 2)
            for app in (a, b):
                w.auth(t - HOUR_MS, app, seller, "grant")
                for _ in range(18):
                    w.call(t + rng.randint(0, 240 * SECOND_MS), app, seller, "getOrders", 200)
            self.note(
                "negative_two_vendors",
                seller_id=seller.id,
                developer_ids=sorted((a.dev.id, b.dev.id)),
            )
        # negative: one address used by two accounts 26 h apart is outside link_horizon
        t = self.at()
        (a, b), (seller,) = self.pick(t, 2)
        reused = w.new_ip("shared")
        w.call(t, a, a.primary, "getOrders", 200, ip=reused)
        t2 = t + 26 * HOUR_MS
        for app in (a, b):
            w.auth(t2 - HOUR_MS, app, seller, "grant")
        for k in range(18):
            w.call(t2 + k * 10 * SECOND_MS, b, seller, "getOrders", 200, ip=reused)
            w.call(t2 + k * 10 * SECOND_MS + 3 * SECOND_MS, a, seller, "getOrders", 200)
        self.note(
            "negative_address_reused_after_link_horizon",
            shared_ip=reused,
            developer_ids=sorted((a.dev.id, b.dev.id)),
        )

    @staticmethod
    def _excess(op: str, times: list[int]) -> int:
        rate, burst = PLANS.get(op, DEFAULT_PLAN)
        tokens, last, excess = float(burst), times[0], 0
        for ts in times:
            tokens = min(float(burst), tokens + (ts - last) / 1000.0 * rate)
            last = ts
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                excess += 1
        return excess

    # ---- 3. cross_seller_disclosure ----------------------------------------------------
    def disclosure(self) -> None:
        """other_seller, external_party; staff, multi-owner, unowned negatives."""
        w, rng = self.w, self.rng
        for reason in ("other_seller", "external_party"):
            for i in range(PER_REASON):
                t = self.at()
                (app,), (owner,) = self.pick(t)
                w.auth(t - rng.randint(10 * MINUTE_MS, DAY_MS), app, owner, "grant")
                oids = [w.order_id() for _ in range(rng.randint(2, 5))]
                w.call(t, app, owner, "getOrders", 200, resources=oids)
                if reason == "other_seller":
                    viewer = rng.choice([s for s in w.sellers if s is not owner])
                    vid, vtype, extra = rng.choice(viewer.users), "seller_user", viewer
                    subject = {
                        "app_id": app.id,
                        "owner_seller_id": owner.id,
                        "viewer_type": vtype,
                        "viewer_seller_id": viewer.id,
                    }
                else:
                    party = rng.choice(("datahub-partners", "leadgen.example", "analytics-co"))
                    vid = f"ext-{party}"
                    vtype, extra = "external", None
                    subject = {
                        "app_id": app.id,
                        "owner_seller_id": owner.id,
                        "viewer_type": vtype,
                        "viewer_id": vid,
                    }
                half = max(1, len(oids) // 2)
                ta = t + rng.randint(5 * SECOND_MS, 10 * MINUTE_MS)
                w.access(ta, app, oids[:half], vtype, vid, extra, rng.choice(("ui", "export")))
                if i % 2 == 0:
                    w.access(
                        ta + rng.randint(MINUTE_MS, 15 * MINUTE_MS),
                        app,
                        oids[half:],
                        vtype,
                        vid,
                        extra,
                        rng.choice(("email", "webhook")),
                    )
                self.expect("cross_seller_disclosure", reason, subject)
                self.note("disclosure_" + reason, subject=subject)
        # negatives: staff viewing data; a resource owned by two sellers shown to one of
        # them; a resource never fetched by this app shown outside (unowned: no alert)
        for _ in range(2):
            t = self.at()
            (app,), (owner, x, v) = self.pick(t, n_sellers=3)
            w.auth(t - HOUR_MS, app, owner, "grant")
            oids = [w.order_id() for _ in range(3)]
            w.call(t, app, owner, "getOrders", 200, resources=oids)
            w.access(
                t + 30 * SECOND_MS,
                app,
                oids,
                "internal_user",
                rng.choice(app.dev.staff),
                None,
                "ui",
            )
            self.note("negative_internal_user", app_id=app.id, owner_seller_id=owner.id)
            shared_res = w.res_id("sku-")
            for seller in (x, v):
                w.auth(t - HOUR_MS, app, seller, "grant")
                w.call(
                    t + 40 * SECOND_MS, app, seller, "getListingsItem", 200, resources=[shared_res]
                )
            w.access(
                t + 90 * SECOND_MS, app, [shared_res], "seller_user", rng.choice(v.users), v, "ui"
            )
            self.note("negative_multi_owner", app_id=app.id, resource_id=shared_res)
            other = self.app_at(t, (app,))
            w.access(
                t + 100 * SECOND_MS,
                other,
                [oids[0]],
                "external",
                "ext-unknown-party",
                None,
                "email",
            )
            self.note("negative_unowned_in_app", app_id=other.id, resource_id=oids[0])

    # ---- 4. dormant_key ----------------------------------------------------------------
    def dormancy(self) -> None:
        """Dormant, warned, reactivated and revoked keys; 59/89-day keys."""
        w, rng = self.w, self.rng
        early = [a for a in w.apps if a.start <= w.start + DAY_MS] or w.apps
        span_days = w.span / DAY_MS

        def use(app: App, key_id: str, ts: int, status: int = 200) -> None:
            w.call(ts, app, app.primary, HEARTBEAT_OP, status, key_id=key_id)

        def keep_alive(app: App, key_id: str, t: int) -> None:
            while True:
                t += rng.randint(25 * DAY_MS, 40 * DAY_MS)
                if t >= w.end:
                    return
                use(app, key_id, t)

        for i in range(PER_REASON):
            if span_days >= 100:  # dormant (with its warning): silent for 90+ days
                app = rng.choice(early)
                c = max(app.start + HOUR_MS, w.start + rng.randint(2 * HOUR_MS, 3 * DAY_MS))
                key = self.new_key(app, c)
                use(app, key, c + rng.randint(HOUR_MS, DAY_MS))
                self.note("dormant", key_id=key)
            if span_days >= 85:  # warning only: last success 65-78 days before the end
                app = rng.choice(early)
                last = w.end - rng.randint(65 * DAY_MS, 78 * DAY_MS)
                key = self.new_key(app, last - rng.randint(DAY_MS, 5 * DAY_MS))
                use(app, key, last)
                self.note("dormant_warning", key_id=key)
            if span_days >= 105:  # reactivated: dormant, then a failed and a good call
                app = rng.choice(early)
                c = max(app.start + HOUR_MS, w.start + rng.randint(2 * HOUR_MS, 2 * DAY_MS))
                key = self.new_key(app, c)
                use(app, key, c + HOUR_MS)
                back = c + HOUR_MS + DORMANT_AFTER + rng.randint(2 * DAY_MS, 10 * DAY_MS)
                use(app, key, back, 403)
                use(app, key, back + rng.randint(MINUTE_MS, 20 * MINUTE_MS))
                keep_alive(app, key, back + 20 * MINUTE_MS)
                self.note("reactivated", key_id=key)
            # revoked/deleted key used again (never dormant)
            c = self.at()
            app = self.app_at(c)
            key = self.new_key(app, c)
            use(app, key, c + rng.randint(MINUTE_MS, 6 * HOUR_MS))
            dead = c + rng.randint(7 * HOUR_MS, 10 * DAY_MS if span_days > 60 else DAY_MS)
            w.key_event(dead, key, app, "deleted" if i == 2 else "revoked")
            t = dead + rng.randint(HOUR_MS, 5 * DAY_MS if span_days > 60 else DAY_MS)
            for n in range(rng.randint(1, 3)):
                use(
                    app,
                    key,
                    t + n * rng.randint(MINUTE_MS, 10 * MINUTE_MS),
                    rng.choice((401, 403, 200)),
                )
            self.note("revoked_key_used", key_id=key)
        # negative: a key used every 59 days (just inside the 60-day warning)
        if span_days >= 60:
            app = rng.choice(early)
            c = max(app.start + HOUR_MS, w.start + rng.randint(HOUR_MS, DAY_MS))
            key = self.new_key(app, c)
            t = c
            while t < w.end:
                t += 59 * DAY_MS + rng.randint(0, 6 * HOUR_MS)
                use(app, key, min(t, w.end - HOUR_MS))
            self.note("negative_key_every_59_days", key_id=key)
        # a failed first call 15 days after creation does not move the clock: the warning
        # is due 60 days after creation (aupwatch.detectors.md: later of creation and last 2xx call)
        if span_days >= 75:
            app = rng.choice(early)
            c = w.end - 70 * DAY_MS - rng.randint(0, DAY_MS)
            key = self.new_key(app, c)
            use(app, key, c + 15 * DAY_MS, 401)
            self.note("first_call_failed_clock_from_creation", key_id=key)
        # a key used every 89 days: no dormancy, but one warning per idle period
        if span_days >= 95:
            app = rng.choice(early)
            c = max(app.start + HOUR_MS, w.start + rng.randint(HOUR_MS, DAY_MS))
            key = self.new_key(app, c)
            t = c
            while t + 89 * DAY_MS < w.end:
                t += 89 * DAY_MS + rng.randint(0, 6 * HOUR_MS)
                use(app, key, t)
            self.note("key_every_89_days", key_id=key)

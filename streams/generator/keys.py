"""Key cases: dormant_key (simulated at the end) and credential_sharing.

Every key created here is tracked: its dormancy alerts are simulated with the rules of
docs/semantics.md once the largest event time of the file is known (replay flushes the
watermark to it at the end of input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.streams.generator.entities import (
    DAY_MS,
    HEARTBEAT_OP,
    HOUR_MS,
    MINUTE_MS,
    App,
)

if TYPE_CHECKING:
    from aupwatch.streams.generator.inject import Injector

PER_REASON = 3
WARN_AFTER = 60 * DAY_MS
DORMANT_AFTER = 90 * DAY_MS
DEDUP_WINDOW = HOUR_MS


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


def inject_dormancy(inj: Injector) -> None:
    """Dormant, warned, reactivated and revoked keys; 59/89-day keys."""
    w, rng = inj.w, inj.rng
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
            key = inj.new_key(app, c)
            use(app, key, c + rng.randint(HOUR_MS, DAY_MS))
            inj.note("dormant", key_id=key)
        if span_days >= 85:  # warning only: last success 65-78 days before the end
            app = rng.choice(early)
            last = w.end - rng.randint(65 * DAY_MS, 78 * DAY_MS)
            key = inj.new_key(app, last - rng.randint(DAY_MS, 5 * DAY_MS))
            use(app, key, last)
            inj.note("dormant_warning", key_id=key)
        if span_days >= 105:  # reactivated: dormant, then a failed and a good call
            app = rng.choice(early)
            c = max(app.start + HOUR_MS, w.start + rng.randint(2 * HOUR_MS, 2 * DAY_MS))
            key = inj.new_key(app, c)
            use(app, key, c + HOUR_MS)
            back = c + HOUR_MS + DORMANT_AFTER + rng.randint(2 * DAY_MS, 10 * DAY_MS)
            use(app, key, back, 403)
            use(app, key, back + rng.randint(MINUTE_MS, 20 * MINUTE_MS))
            keep_alive(app, key, back + 20 * MINUTE_MS)
            inj.note("reactivated", key_id=key)
        # revoked/deleted key used again (never dormant)
        c = inj.at()
        app = inj.app_at(c)
        key = inj.new_key(app, c)
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
        inj.note("revoked_key_used", key_id=key)
    # negative: a key used every 59 days (just inside the 60-day warning)
    if span_days >= 60:
        app = rng.choice(early)
        c = max(app.start + HOUR_MS, w.start + rng.randint(HOUR_MS, DAY_MS))
        key = inj.new_key(app, c)
        t = c
        while t < w.end:
            t += 59 * DAY_MS + rng.randint(0, 6 * HOUR_MS)
            use(app, key, min(t, w.end - HOUR_MS))
        inj.note("negative_key_every_59_days", key_id=key)
    # a failed first call 15 days after creation does not move the clock: the warning
    # is due 60 days after creation (aupwatch.detectors.md: later of creation and last 2xx call)
    if span_days >= 75:
        app = rng.choice(early)
        c = w.end - 70 * DAY_MS - rng.randint(0, DAY_MS)
        key = inj.new_key(app, c)
        use(app, key, c + 15 * DAY_MS, 401)
        inj.note("first_call_failed_clock_from_creation", key_id=key)
    # a key used every 89 days: no dormancy, but one warning per idle period
    if span_days >= 95:
        app = rng.choice(early)
        c = max(app.start + HOUR_MS, w.start + rng.randint(HOUR_MS, DAY_MS))
        key = inj.new_key(app, c)
        t = c
        while t + 89 * DAY_MS < w.end:
            t += 89 * DAY_MS + rng.randint(0, 6 * HOUR_MS)
            use(app, key, t)
        inj.note("key_every_89_days", key_id=key)


def _use(inj: Injector, app: App, key_id: str, ts: int, status: int = 200) -> None:
    """A call with ``key_id`` through ``app`` for its primary seller (always granted)."""
    inj.w.call(ts, app, app.primary, HEARTBEAT_OP, status, key_id=key_id)


def _other_app(inj: Injector, owner: App, t: int) -> App:
    """Another app of the owner's developer, or a new one (outside the background)."""
    others = [a for a in owner.dev.apps if a is not owner and a.start + DAY_MS <= t]
    if others:
        return inj.rng.choice(others)
    aid = f"sp-app-{inj.rng.getrandbits(40):010x}"
    return App(aid, owner.dev, ["orders"], None, owner.ua, t - DAY_MS, 1.0)


def inject_credentials(inj: Injector) -> None:
    """foreign_developer and foreign_app; a rotated key still used by its owner."""
    w, rng = inj.w, inj.rng
    detector = "credential_sharing"
    for i in range(PER_REASON):
        # another developer calls with the key, from its own addresses
        c = inj.at()
        owner = inj.app_at(c)
        key = inj.new_key(owner, c)
        _use(inj, owner, key, c + rng.randint(MINUTE_MS, HOUR_MS))
        t = c + rng.randint(2 * HOUR_MS, 20 * HOUR_MS)
        other = inj.app_at(t, (owner,))
        for n in range(rng.randint(1, 3)):
            _use(inj, other, key, t + n * rng.randint(MINUTE_MS, 8 * MINUTE_MS), (200, 403)[n % 2])
        subject = {"key_id": key, "owner_developer_id": owner.dev.id, "developer_id": other.dev.id}
        inj.expect(detector, "foreign_developer", subject)
        inj.note("credential_foreign_developer", subject=subject)
        # the owner calls with the key through another of its apps
        c = inj.at()
        owner = inj.app_at(c)
        key = inj.new_key(owner, c)
        _use(inj, owner, key, c + rng.randint(MINUTE_MS, HOUR_MS))
        t = c + rng.randint(2 * HOUR_MS, 20 * HOUR_MS)
        second = _other_app(inj, owner, t)
        sellers = w.free_sellers([second], 1)
        if sellers is None:
            raise ValueError("not enough sellers for the injected cases; raise sellers")
        w.auth(t - rng.randint(HOUR_MS, 2 * HOUR_MS), second, sellers[0], "grant")
        for n in range(rng.randint(1, 3)):
            w.call(t + n * MINUTE_MS, second, sellers[0], HEARTBEAT_OP, 200, key_id=key)
        subject = {"key_id": key, "owner_developer_id": owner.dev.id, "app_id": second.id}
        inj.expect(detector, "foreign_app", subject)
        inj.note("credential_foreign_app", subject=subject)
        if i == 0:  # an exception that ended before the use excepts nothing
            inj.except_tuned(
                None,
                {
                    "detector": detector,
                    "reason": "foreign_app",
                    "subject": {"key_id": key},
                    "until": w.fmt(t - DAY_MS),
                    "note": "SEC-9: migration between the two apps, finished",
                },
            )
    # negative: a key rotated and still used by its owner
    c = inj.at()
    owner = inj.app_at(c)
    key = inj.new_key(owner, c)
    _use(inj, owner, key, c + rng.randint(MINUTE_MS, HOUR_MS))
    r = c + rng.randint(2 * HOUR_MS, 2 * DAY_MS)
    w.key_event(r, key, owner, "rotated")
    for n in range(3):
        _use(inj, owner, key, r + (n + 1) * rng.randint(HOUR_MS, 6 * HOUR_MS))
    inj.note("negative_rotated_key_used_by_owner", key_id=key)

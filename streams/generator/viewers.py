"""unauthorized_viewer cases of the generator: injected breaches, negatives and their truth.

They are injected after the background, so that adding them left the earlier records (and
their event ids) as they were. The truth is simulated over every access by a seller user
the world emitted (the background's are authorized by construction), by docs/semantics.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.streams.generator.entities import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

if TYPE_CHECKING:
    from aupwatch.streams.generator.inject import Injector
    from aupwatch.streams.generator.world import World

DETECTOR = "unauthorized_seller_access"
REASON = "unauthorized_viewer"
DEDUP_WINDOW = HOUR_MS


def inject_viewers(inj: Injector, per_reason: int) -> None:
    """Users of sellers that never authorized, revoked or let expire the app see its data."""
    w, rng = inj.w, inj.rng
    for i in range(per_reason):
        t = inj.at(21 * DAY_MS)
        (app,), (viewer,) = inj.pick(t, age=21 * DAY_MS)
        how = ("never", "revoked", "expired")[i % 3]
        if how == "never":
            oids = [w.order_id() for _ in range(2)]  # never fetched: unowned, no disclosure
        else:
            g = t - rng.randint(3 * DAY_MS, 8 * DAY_MS)
            expires = t - rng.randint(HOUR_MS, DAY_MS) if how == "expired" else None
            w.auth(g, app, viewer, "grant", expires_at=expires)
            oids = [w.order_id() for _ in range(3)]
            w.call(g + HOUR_MS, app, viewer, "getOrders", 200, resources=oids)
            if how == "revoked":
                w.auth(t - rng.randint(2 * HOUR_MS, 2 * DAY_MS), app, viewer, "revoke")
        for n in range(rng.randint(1, 3)):
            w.access(
                t + n * rng.randint(SECOND_MS, 10 * MINUTE_MS),
                app,
                [oids[n % len(oids)]],
                "seller_user",
                rng.choice(viewer.users),
                viewer,
                rng.choice(("ui", "export")),
            )
        inj.note("unauthorized_viewer_" + how, app_id=app.id, seller_id=viewer.id)
    # negatives: a grant delivered after the access it precedes (within the lateness); a
    # user of a seller that revoked and granted again
    for _ in range(2):
        t = inj.at()
        (app,), (viewer,) = inj.pick(t)
        s = w.shuffle_ms
        oid = w.order_id()
        if s >= 4 * SECOND_MS:
            w.access(t + s * 3 // 10, app, [oid], "seller_user", viewer.users[0], viewer,
                     sort_key=t + s * 3 // 10)  # fmt: skip
            w.auth(t, app, viewer, "grant", sort_key=t + s * 9 // 10)
        else:
            w.auth(t, app, viewer, "grant")
            w.access(t + 2 * SECOND_MS, app, [oid], "seller_user", viewer.users[0], viewer)
        inj.note("negative_viewer_grant_delivered_after_access", app_id=app.id)
        t = inj.at()
        (app,), (viewer,) = inj.pick(t)
        w.auth(t - 2 * DAY_MS, app, viewer, "grant")
        w.auth(t - DAY_MS, app, viewer, "revoke")
        w.auth(t - HOUR_MS, app, viewer, "grant", expires_at=t + HOUR_MS)
        w.access(t, app, [w.order_id()], "seller_user", viewer.users[0], viewer)
        inj.note("negative_viewer_regrant_after_revoke", app_id=app.id)


def viewer_truth(world: World) -> list[tuple[dict[str, str], int]]:
    """Expected unauthorized_viewer alerts: (subject, alert ts), dedup window 1 h."""
    opened: dict[tuple[str, str], int] = {}
    alerts: list[tuple[dict[str, str], int]] = []
    for ts, app, seller in sorted(world.viewer_log):
        # the latest authorization in decision order (ts, event id) at or before the access
        history = sorted(
            (a for a in world.auth_log.get((app, seller), []) if a[0] <= ts),
            key=lambda a: (a[0], a[1]),
        )
        if history:
            _, _, action, expires = history[-1]
            if action == "grant" and (expires is None or expires > ts):
                continue
        first = opened.get((app, seller))
        if first is None or ts >= first + DEDUP_WINDOW:
            opened[(app, seller)] = ts
            alerts.append(({"app_id": app, "seller_id": seller}, ts))
    return alerts

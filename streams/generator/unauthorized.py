"""unauthorized_seller_access cases of calls: no_grant, revoked, expired, missing_role.

The negatives are a grant delivered after the call it precedes (within the lateness) and a
grant given again after a revoke. ``viewers`` holds the unauthorized_viewer cases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.streams.generator.entities import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

if TYPE_CHECKING:
    from aupwatch.streams.generator.inject import Injector

PER_REASON = 3


def inject_unauthorized(inj: Injector) -> None:
    """no_grant, revoked, expired, missing_role; grant-order negatives."""
    w, rng = inj.w, inj.rng
    for reason in ("no_grant", "revoked", "expired", "missing_role"):
        for i in range(PER_REASON):
            t = inj.at(21 * DAY_MS)
            (app,), (seller,) = inj.pick(t, age=21 * DAY_MS)
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
                    rng.choice((200, 403)) if reason == "no_grant" else rng.choice((200, 200, 403))
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
            inj.expect("unauthorized_seller_access", reason, subject)
            inj.note("unauthorized_" + reason, subject=subject)
    # negatives: grant a few seconds before the first call but delivered after it;
    # re-grant after a revoke; a call while a dated grant is still valid
    for _ in range(PER_REASON):
        t = inj.at()
        (app,), (seller,) = inj.pick(t)
        s = w.shuffle_ms
        if s >= 4 * SECOND_MS:
            w.call(t + s * 3 // 10, app, seller, "getOrders", 200, sort_key=t + s * 3 // 10)
            w.auth(t, app, seller, "grant", sort_key=t + s * 9 // 10)
        else:
            w.auth(t, app, seller, "grant")
            w.call(t + 2 * SECOND_MS, app, seller, "getOrders", 200)
        w.call(t + 5 * MINUTE_MS, app, seller, "getOrders", 200)
        inj.note("negative_grant_delivered_after_call", app_id=app.id, seller_id=seller.id)
        t = inj.at()
        (app,), (seller,) = inj.pick(t)
        w.auth(t - 2 * DAY_MS, app, seller, "grant")
        w.auth(t - DAY_MS, app, seller, "revoke")
        w.auth(t - HOUR_MS, app, seller, "grant", expires_at=t + HOUR_MS)
        w.call(t, app, seller, "getOrders", 200)
        inj.note("negative_regrant_after_revoke", app_id=app.id, seller_id=seller.id)

"""cross_seller_disclosure cases: other_seller, external_party and their negatives.

Also the ownership_wait cases (an access before the call that fetched its resource) and
internal_overreach (internal users reaching the data of many sellers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.streams.generator.entities import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

if TYPE_CHECKING:
    from aupwatch.streams.generator.inject import Injector

PER_REASON = 3


def inject_disclosure(inj: Injector) -> None:
    """other_seller, external_party; staff, multi-owner, unowned negatives."""
    w, rng = inj.w, inj.rng
    for reason in ("other_seller", "external_party"):
        for i in range(PER_REASON):
            t = inj.at()
            (app,), (owner,) = inj.pick(t)
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
            inj.expect("cross_seller_disclosure", reason, subject)
            inj.note("disclosure_" + reason, subject=subject)
    # negatives: staff viewing data; a resource owned by two sellers shown to one of
    # them; a resource never fetched by this app shown outside (unowned: no alert)
    for _ in range(2):
        t = inj.at()
        (app,), (owner, x, v) = inj.pick(t, n_sellers=3)
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
        inj.note("negative_internal_user", app_id=app.id, owner_seller_id=owner.id)
        shared_res = w.res_id("sku-")
        for seller in (x, v):
            w.auth(t - HOUR_MS, app, seller, "grant")
            w.call(t + 40 * SECOND_MS, app, seller, "getListingsItem", 200, resources=[shared_res])
        w.access(t + 90 * SECOND_MS, app, [shared_res], "seller_user", rng.choice(v.users), v, "ui")
        inj.note("negative_multi_owner", app_id=app.id, resource_id=shared_res)
        other = inj.app_at(t, (app,))
        w.access(
            t + 100 * SECOND_MS,
            other,
            [oids[0]],
            "external",
            "ext-unknown-party",
            None,
            "email",
        )
        inj.note("negative_unowned_in_app", app_id=other.id, resource_id=oids[0])


def inject_ownership_wait(inj: Injector) -> None:
    """Accesses before the call that fetched their resources: within the wait and after it.

    The app is granted by both sellers, so the viewer is authorized (no unauthorized_viewer).
    """
    w, rng = inj.w, inj.rng
    # (how long the access comes before the fetch, viewer type); the wait is 5 min inclusive
    for lead, viewer_type in (
        (4 * MINUTE_MS, "seller_user"),
        (5 * MINUTE_MS, "external"),
        (5 * MINUTE_MS + SECOND_MS, "external"),
    ):
        t = inj.at()
        (app,), (owner, other) = inj.pick(t, n_sellers=2)
        for seller in (owner, other):
            w.auth(t - rng.randint(HOUR_MS, DAY_MS), app, seller, "grant")
        oids = [w.order_id() for _ in range(2)]
        base = {"app_id": app.id, "owner_seller_id": owner.id, "viewer_type": viewer_type}
        if viewer_type == "seller_user":
            w.access(t - lead, app, oids, viewer_type, rng.choice(other.users), other, "export")
            reason, subject = "other_seller", {**base, "viewer_seller_id": other.id}
        else:
            viewer = f"ext-{rng.choice(('reportly', 'bi-partner', 'mailhouse'))}-{lead // 1000}"
            w.access(t - lead, app, oids, viewer_type, viewer, None, "email")
            reason, subject = "external_party", {**base, "viewer_id": viewer}
        w.call(t, app, owner, "getOrders", 200, resources=oids)
        if lead <= 5 * MINUTE_MS:
            inj.expect("cross_seller_disclosure", reason, subject)
            inj.note("disclosure_ownership_wait", subject=subject, lead_ms=lead)
        else:
            inj.note("negative_access_before_ownership_wait", subject=subject, lead_ms=lead)

"""internal_overreach cases: internal users reaching the data of many sellers.

One app fetches one order of each of 30 sellers it has no other traffic with; its
internal users then see some of them. Every user is new (no background traffic), so the
sellers each reaches are exactly those placed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.streams.generator.entities import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

if TYPE_CHECKING:
    from aupwatch.streams.generator.inject import Injector

DETECTOR, REASON = "internal_overreach", "broad_access"
SELLERS = 30


def inject_overreach(inj: Injector) -> None:
    """broad_access breaches (one a support desk the tuned config excepts); 24 sellers."""
    w, rng = inj.w, inj.rng
    t = inj.at()
    (app,), sellers = inj.pick(t, n_sellers=SELLERS)
    res: list[str] = []
    for k, seller in enumerate(sellers):
        w.auth(t - rng.randint(HOUR_MS, DAY_MS), app, seller, "grant")
        res.append(w.order_id())
        w.call(t + k * 20 * SECOND_MS, app, seller, "getOrders", 200, resources=[res[-1]])
    start = t + 15 * MINUTE_MS  # after every fetch
    tag = app.dev.id[4:]

    def view(user: str, ts: int, rids: list[str]) -> None:
        w.access(ts, app, rids, "internal_user", user, None, rng.choice(("ui", "export")))

    def expect(user: str, case: str) -> dict[str, str]:
        subject = {"app_id": app.id, "viewer_id": user}
        inj.expect(DETECTOR, REASON, subject)
        inj.note(case, subject=subject)
        return subject

    # a support desk sees all 30 sellers in three accesses (excepted in the tuned config)
    desk = f"support-desk-{tag}"
    for n in range(3):
        view(desk, start + n * MINUTE_MS, res[n * 10 : (n + 1) * 10])
    subject = expect(desk, "broad_access_support_desk")
    inj.except_tuned(
        {"detector": DETECTOR, "reason": REASON, "subject": subject},
        {
            "detector": DETECTOR,
            "subject": {"viewer_id": desk},
            "note": "SUP-42: the support desk serves every seller",
        },
    )
    # an analyst opens 26 sellers' orders one by one
    analyst = f"staff-{tag}-analyst"
    for k in range(26):
        view(analyst, start + 5 * MINUTE_MS + k * 30 * SECOND_MS, [res[k]])
    expect(analyst, "broad_access_one_by_one")
    # an export of 24 sellers, then a 25th
    exporter = f"staff-{tag}-export"
    view(exporter, start + 30 * MINUTE_MS, res[:24])
    view(exporter, start + 40 * MINUTE_MS, [res[24]])
    expect(exporter, "broad_access_export")
    # negative: a support user sees 24 sellers (max_sellers is 25)
    support = f"support-{tag}-1"
    for n in range(4):
        view(support, start + 50 * MINUTE_MS + n * 2 * MINUTE_MS, res[n * 6 : (n + 1) * 6])
    inj.note("negative_support_user_24_sellers", app_id=app.id, viewer_id=support)
    # negative: 13 sellers, then 12 others exactly 24 h later (the window's start is open)
    later = f"staff-{tag}-night"
    view(later, start + 70 * MINUTE_MS, res[:13])
    view(later, start + 70 * MINUTE_MS + DAY_MS, res[13:25])
    inj.note("negative_sellers_24h_apart", app_id=app.id, viewer_id=later)

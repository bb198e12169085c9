"""throttle_disrespect cases: retry storms, and throttling that is no storm.

A storm is 22-30 throttled (429) calls and a few good ones within 150 s: at least 20 429s
that are at least half of the scope's calls in the 5-minute window, so one alert. Each
scope is an app and a seller it has no other traffic with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aupwatch.streams.generator.entities import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, App, Seller

if TYPE_CHECKING:
    from aupwatch.streams.generator.inject import Injector

DETECTOR, REASON = "throttle_disrespect", "retry_storm"
OPS = ("getOrders", "getOrderItems", "getListingsItem")  # none needs a role
PER_REASON = 3


def _scope(inj: Injector) -> tuple[int, App, Seller]:
    """A time, an app and a seller it has no pair with, granted before that time."""
    t = inj.at()
    (app,), (seller,) = inj.pick(t)
    inj.w.auth(t - inj.rng.randint(HOUR_MS, DAY_MS), app, seller, "grant")
    return t, app, seller


def inject_retry_storms(inj: Injector) -> None:
    """retry_storm breaches; transient 429s, 19 in the window and a share below half."""
    w, rng = inj.w, inj.rng
    for i in range(PER_REASON):
        t, app, seller = _scope(inj)
        n_throttled, n_ok = rng.randint(22, 30), rng.randint(2, 8)
        times = sorted(t + rng.randint(0, 150 * SECOND_MS) for _ in range(n_throttled + n_ok))
        statuses = [429] * n_throttled + [200] * n_ok
        rng.shuffle(statuses)
        for ts, status in zip(times, statuses, strict=True):
            w.call(ts, app, seller, OPS[i], status)
        subject = {
            "app_id": app.id,
            "seller_id": seller.id,
            "operation": OPS[i],
            "developer_id": app.dev.id,
        }
        inj.expect(DETECTOR, REASON, subject)
        inj.note("retry_storm", subject=subject, throttled=n_throttled, calls=len(times))
        if i == 0:  # the tuned config excepts this scope (any reason of the detector)
            inj.except_tuned(
                {"detector": DETECTOR, "reason": REASON, "subject": subject},
                {
                    "detector": DETECTOR,
                    "subject": {"app_id": app.id, "seller_id": seller.id},
                    "note": "OPS-7: agreed load test of the vendor's retry logic",
                },
            )
    # negative: a few transient 429s among ordinary calls
    t, app, seller = _scope(inj)
    for k in range(30):
        w.call(t + k * 8 * SECOND_MS, app, seller, "getOrders", 429 if k % 7 == 3 else 200)
    inj.note("negative_transient_429s", app_id=app.id, seller_id=seller.id)
    # negative: 20 429s, but the first falls out of the window (start exclusive) at the last
    t, app, seller = _scope(inj)
    for k in range(19):
        w.call(t + k * 3 * SECOND_MS, app, seller, "getOrders", 429)
    w.call(t + 5 * MINUTE_MS, app, seller, "getOrders", 429)
    inj.note("negative_19_throttled_in_window", app_id=app.id, seller_id=seller.id)
    # negative: 20 429s after 21 good calls: 20 of 41 is below half
    t, app, seller = _scope(inj)
    for k in range(41):
        w.call(t + k * 3 * SECOND_MS, app, seller, "getOrders", 200 if k < 21 else 429)
    inj.note("negative_throttled_below_half", app_id=app.id, seller_id=seller.id)

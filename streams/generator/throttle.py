"""throttle_circumvention cases: groups linked by a shared address or user agent.

A group's calls are placed so that its shared bucket has at least ``MIN_EXCESS + 3`` excess
calls within minutes (checked with the plan's token bucket), so each case is one alert.
Links by user agent and the ignored proxy network only count under the tuned configuration
(``aupwatch.streams.generator.tuned``), so those cases have a truth per configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aupwatch.streams.generator.entities import (
    DAY_MS,
    DEFAULT_PLAN,
    HOUR_MS,
    PLANS,
    SECOND_MS,
    App,
    Seller,
)
from aupwatch.streams.generator.tuned import DEFAULT, SDK_USER_AGENT, TUNED, proxy_address

if TYPE_CHECKING:
    from aupwatch.streams.generator.inject import Injector


MIN_EXCESS = 5


def inject_shared_quota(inj: Injector) -> None:
    """shared_quota groups; unrelated vendors and stale shared addresses."""
    w, rng = inj.w, inj.rng
    # (operation, accounts, calls per account, spread of the calls in seconds)
    plans = [
        ("getOrders", 2, 18, 180),
        ("getOrders", 3, 15, 240),
        ("createRestrictedDataToken", 3, 12, 8),
        ("getOrder", 2, 28, 20),
    ]
    for op, n_acc, per, spread in plans:
        t = inj.at()
        apps, (seller,) = inj.pick(t, n_acc)
        shared = w.new_ip("shared")
        subject, excess = burst(inj, t, apps, seller, op, per, spread, shared)
        inj.expect("throttle_circumvention", "shared_quota", subject)
        inj.note("throttle_shared_quota", subject=subject, shared_ip=shared, excess_calls=excess)
    # negative: two unrelated vendors serve one seller+operation at a high combined
    # rate, each from its own addresses, each within the plan
    for _ in range(2):
        t = inj.at()
        (a, b), (seller,) = inj.pick(t, 2)
        for app in (a, b):
            w.auth(t - HOUR_MS, app, seller, "grant")
            for _ in range(18):
                w.call(t + rng.randint(0, 240 * SECOND_MS), app, seller, "getOrders", 200)
        inj.note(
            "negative_two_vendors",
            seller_id=seller.id,
            developer_ids=sorted((a.dev.id, b.dev.id)),
        )
    # negative: one address used by two accounts 26 h apart is outside link_horizon
    t = inj.at()
    (a, b), (seller,) = inj.pick(t, 2)
    reused = w.new_ip("shared")
    w.call(t, a, a.primary, "getOrders", 200, ip=reused)
    t2 = t + 26 * HOUR_MS
    for app in (a, b):
        w.auth(t2 - HOUR_MS, app, seller, "grant")
    for k in range(18):
        w.call(t2 + k * 10 * SECOND_MS, b, seller, "getOrders", 200, ip=reused)
        w.call(t2 + k * 10 * SECOND_MS + 3 * SECOND_MS, a, seller, "getOrders", 200)
    inj.note(
        "negative_address_reused_after_link_horizon",
        shared_ip=reused,
        developer_ids=sorted((a.dev.id, b.dev.id)),
    )


def burst(
    inj: Injector,
    t: int,
    apps: list[App],
    seller: Seller,
    op: str,
    per: int,
    spread: int,
    ip: str | None,
    ua: str | None = None,
) -> tuple[dict[str, Any], int]:
    """Grants and calls of a group far over its shared plan; its subject and excess calls.

    Each account calls ``per`` times within ``spread`` seconds, from ``ip`` (None: each
    from its own addresses) with user agent ``ua`` (None: each its own).
    """
    w, rng = inj.w, inj.rng
    for app in apps:
        w.auth(t - rng.randint(HOUR_MS, 2 * DAY_MS), app, seller, "grant", roles=["orders", "pii"])
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
            ip=ip,
            resources=[w.order_id()] if op != "createRestrictedDataToken" else None,
            ua=ua,
        )
    excess = excess_calls(op, [ts for ts, _ in calls][1:])
    if excess < MIN_EXCESS + 3:
        raise AssertionError(f"throttle case too weak: {excess} excess calls")
    subject = {
        "region": seller.region,
        "seller_id": seller.id,
        "operation": op,
        "developer_ids": sorted(a.dev.id for a in apps),
    }
    return subject, excess


def inject_linked_quota(inj: Injector) -> None:
    """Groups linked by user agent or through the proxy; the SDK agent links no one.

    Their truth depends on the configuration: user agents link only in the tuned one,
    which also ignores the proxy network (its calls still charge a group linked by agent).
    """
    rng = inj.rng
    detector, reason = "throttle_circumvention", "shared_quota"
    for n, (op, n_acc, per, spread) in enumerate(
        (("getOrders", 2, 18, 180), ("getOrder", 3, 20, 20))
    ):
        t = inj.at()
        apps, (seller,) = inj.pick(t, n_acc)
        ua = f"orderbot/{n + 2}.{rng.randint(0, 9)} (scripted; +https://orderbot.example)"
        subject, excess = burst(inj, t, apps, seller, op, per, spread, None, ua)
        inj.expect(detector, reason, subject, config=TUNED)
        inj.note("throttle_user_agent_quota", subject=subject, user_agent=ua, excess_calls=excess)
    # from the proxy, each with its own agent: linked by the address under the defaults only
    t = inj.at()
    apps, (seller,) = inj.pick(t, 2)
    proxy = proxy_address(7)
    subject, excess = burst(inj, t, apps, seller, "getOrders", 18, 180, proxy)
    inj.expect(detector, reason, subject, config=DEFAULT)
    inj.note("throttle_proxy_address", subject=subject, shared_ip=proxy, excess_calls=excess)
    # from the proxy with one agent: linked by the address (defaults) or by the agent (tuned)
    t = inj.at()
    apps, (seller,) = inj.pick(t, 2)
    proxy, ua = proxy_address(9), "stockbot/1.4 (scripted)"
    subject, excess = burst(inj, t, apps, seller, "getOrders", 18, 180, proxy, ua)
    inj.expect(detector, reason, subject)
    inj.note("throttle_agent_via_proxy", subject=subject, shared_ip=proxy, user_agent=ua)
    # negative: the SDK's default agent, each account from its own addresses
    t = inj.at()
    apps, (seller,) = inj.pick(t, 2)
    subject, excess = burst(inj, t, apps, seller, "getOrders", 18, 180, None, SDK_USER_AGENT)
    inj.note("negative_sdk_user_agent", subject=subject, user_agent=SDK_USER_AGENT)


def excess_calls(op: str, times: list[int]) -> int:
    """Excess calls of one shared bucket over call times (the first call forms the group)."""
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

"""Background traffic of the synthetic log generator: ordinary sessions that raise no alert.

See ``aupwatch.streams.generator.world`` for the rules the background keeps.
"""

from __future__ import annotations

import bisect
from typing import Any

from aupwatch.streams.generator.entities import (
    CHANNELS,
    FINANCE_OPS,
    LISTING_OPS,
    ORJSON_DUMPS,
    PII_OPS,
    App,
    Seller,
)
from aupwatch.streams.generator.world import World

STAFF_SELLERS = 20


def background(world: World, target: int) -> None:
    """Emit sessions of ordinary traffic until ``target`` lines exist."""
    pairs = world.pairs
    if not pairs:
        return
    rng = world.rng
    rnd = rng.random
    cum: list[float] = []
    acc = 0.0
    for app, seller, _lo, _hi in pairs:
        acc += app.weight * seller.weight
        cum.append(acc)
    lines, keys, fmt = world.lines, world.keys, world.fmt
    odumps, mv = ORJSON_DUMPS, memoryview
    shuf1 = world.shuffle_ms + 1
    npairs = len(pairs)
    res = world.order_id
    max_ts = world.max_ts
    counter = [world.n_ev]
    # sellers each staff user has seen: kept below internal_overreach's threshold (25)
    portfolio: dict[str, set[str]] = {}

    def emit_call(
        ts: int,
        app: App,
        seller: Seller,
        key: str,
        ip: str,
        op: str,
        status: int,
        rids: list[str] | None,
    ) -> None:
        counter[0] += 1
        rec: dict[str, Any] = {
            "event_id": f"e{counter[0]}",
            "kind": "api_call",
            "ts": fmt(ts),
            "region": seller.region,
            "developer_id": app.dev.id,
            "app_id": app.id,
            "key_id": key,
            "seller_id": seller.id,
            "operation": op,
            "status": status,
            "source_ip": ip,
            "user_agent": app.ua,
        }
        if rids:
            rec["resource_ids"] = rids
        rec["latency_ms"] = 40 + int(rnd() * 900)
        lines.append(bytes(mv(odumps(rec))))
        keys.append(ts + int(rnd() * shuf1))

    def emit_access(ts: int, app: App, seller: Seller, rids: list[str], channel: str) -> None:
        counter[0] += 1
        internal = rnd() >= 0.8
        viewer = ""
        if internal:
            staff = app.dev.staff
            viewer = staff[int(rnd() * len(staff))]
            seen = portfolio.setdefault(viewer, set())
            if seller.id not in seen and len(seen) >= STAFF_SELLERS:
                internal = False  # a user of the seller sees it instead (no draw: same stream)
            else:
                seen.add(seller.id)
        if not internal:
            user = seller.users[int(rnd() * len(seller.users))] if not viewer else seller.users[0]
            rec = {
                "event_id": f"e{counter[0]}",
                "kind": "data_access",
                "ts": fmt(ts),
                "app_id": app.id,
                "resource_ids": rids,
                "viewer_type": "seller_user",
                "viewer_id": user,
                "viewer_seller_id": seller.id,
                "channel": channel,
            }
        else:
            rec = {
                "event_id": f"e{counter[0]}",
                "kind": "data_access",
                "ts": fmt(ts),
                "app_id": app.id,
                "resource_ids": rids,
                "viewer_type": "internal_user",
                "viewer_id": viewer,
                "channel": channel,
            }
        lines.append(bytes(mv(odumps(rec))))
        keys.append(ts + int(rnd() * shuf1))

    def status() -> int:
        r = rnd()
        if r < 0.94:
            return 200
        if r < 0.97:
            return 429
        if r < 0.985:
            return 500 if r < 0.98 else 503
        if r < 0.996:
            return 400 if r < 0.99 else 404
        return 403

    while len(lines) < target:
        app, seller, lo, hi = pairs[bisect.bisect_left(cum, rnd() * acc) % npairs]
        t = lo + int(rnd() * (hi - lo))
        key = app.key_at(t)
        ips = app.dev.ips
        ip = ips[int(rnd() * len(ips))]
        kinds = app.kinds
        kind = kinds[int(rnd() * len(kinds))]
        shown: list[str] = []
        if kind == "orders" or kind == "orders_pii":
            st = status()
            oids = [res() for _ in range(int(rnd() * rnd() * 6))] if st == 200 else []
            emit_call(t, app, seller, key, ip, "getOrders", st, oids)
            shown.extend(oids)
            for oid in oids:
                if rnd() < 0.6:
                    t += 150 + int(rnd() * 2500)
                    st = status()
                    emit_call(t, app, seller, key, ip, "getOrder", st, [oid] if st == 200 else None)
                if rnd() < 0.5:
                    t += 150 + int(rnd() * 2500)
                    st = status()
                    emit_call(
                        t,
                        app,
                        seller,
                        key,
                        ip,
                        "getOrderItems",
                        st,
                        [oid] if st == 200 else None,
                    )
                if kind == "orders_pii" and rnd() < 0.5:
                    t += 150 + int(rnd() * 1500)
                    emit_call(t, app, seller, key, ip, "createRestrictedDataToken", status(), None)
                    t += 150 + int(rnd() * 1500)
                    st = status()
                    emit_call(
                        t,
                        app,
                        seller,
                        key,
                        ip,
                        PII_OPS[int(rnd() * 3)],
                        st,
                        [oid] if st == 200 else None,
                    )
            channel = CHANNELS[int(rnd() * 7)]
        elif kind == "reports":
            rid = world.res_id("rpt-")
            st = status()
            emit_call(t, app, seller, key, ip, "createReport", st, [rid] if st == 200 else None)
            if st == 200:
                t += 30_000 + int(rnd() * 90_000)
                st = status()
                emit_call(t, app, seller, key, ip, "getReport", st, [rid] if st == 200 else None)
                if st == 200:
                    doc = f"amzn1.spdoc.1.4.{seller.region.lower()}.{rid[4:]}"
                    t += 500 + int(rnd() * 3000)
                    st = status()
                    emit_call(
                        t,
                        app,
                        seller,
                        key,
                        ip,
                        "getReportDocument",
                        st,
                        [doc] if st == 200 else None,
                    )
                    if st == 200:
                        shown.append(doc)
            channel = "export" if rnd() < 0.6 else "email"
        else:
            ops = LISTING_OPS if kind == "listings" else FINANCE_OPS
            for _ in range(1 + int(rnd() * 4)):
                st = status()
                rids = [world.res_id("sku-" if kind == "listings" else "fin-")]
                emit_call(
                    t,
                    app,
                    seller,
                    key,
                    ip,
                    ops[int(rnd() * len(ops))],
                    st,
                    rids if st == 200 else None,
                )
                if st == 200 and rnd() < 0.3:
                    shown.extend(rids)
                t += 200 + int(rnd() * 4000)
            channel = "ui"
        if shown and rnd() < 0.55:
            t += 1_000 + int(rnd() * 120_000)
            k = 1 + int(rnd() * len(shown))
            emit_access(t, app, seller, shown[:k], channel)
        if t > max_ts:
            max_ts = t
    world.n_ev = counter[0]
    world.max_ts = max(world.max_ts, max_ts)

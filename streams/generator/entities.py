"""Entities, constants and record helpers of the synthetic log generator."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import orjson

from aupwatch.detectors.config import DetectorConfig

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

REGIONS = ("NA", "EU", "FE")
# Usage plans (rate per second, burst): the detectors' defaults, so traffic stays within them.
PLANS = {op: (plan.rate, plan.burst) for op, plan in DetectorConfig().plans.items()}
DEFAULT_PLAN = (DetectorConfig().default_plan.rate, DetectorConfig().default_plan.burst)
HEARTBEAT_OP = "getMarketplaceParticipations"

# Session kinds an application can run, and the grant roles each one implies.
KIND_ROLES = {
    "orders": ("orders",),
    "orders_pii": ("orders", "pii"),
    "reports": ("reports",),
    "listings": ("listings",),
    "finance": ("finance",),
}
PII_OPS = ("getOrderAddress", "getOrderBuyerInfo", "getOrderItemsBuyerInfo")
LISTING_OPS = ("getListingsRestrictions", "getListingsItem", "getCatalogItem", "putListingsItem")
FINANCE_OPS = ("listFinancialEvents", "getInventorySummaries")
CHANNELS = ("ui", "ui", "ui", "export", "email", "api", "webhook")
VENDORS = (
    "shipfast",
    "ordersync",
    "listly",
    "repricer",
    "feedhub",
    "taxbridge",
    "cartlink",
    "stockpilot",
    "ledgerly",
    "parcelwise",
    "sellerdesk",
    "marginiq",
    "omnistock",
)
STACKS = ("Python/3.11", "Java/17.0.9", "Node.js/20.11", "Go/1.22", ".NET/8.0")
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

ORJSON_DUMPS = orjson.dumps


def dumps(obj: Any) -> bytes:
    """orjson.dumps, copied into an exact-size bytes object.

    orjson's own result keeps its (much larger) write buffer allocated: a million of them
    take gigabytes and most of the run time in page faults.
    """
    return bytes(memoryview(ORJSON_DUMPS(obj)))


_SOD: list[str] = []
_MSS: list[str] = []


def parse_rfc3339_ms(text: str) -> int:
    """Parse an RFC 3339 timestamp (``Z`` or offset) to integer ms since the epoch."""
    value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def make_ts_formatter(origin_ms: int) -> Any:
    """A fast ms -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` formatter (table-driven)."""
    if not _SOD:
        _SOD.extend(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400))
        _MSS.extend(f".{m:03d}Z" for m in range(1000))
    day0 = origin_ms - origin_ms % DAY_MS
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    prefixes: dict[int, str] = {}
    sod, mss = _SOD, _MSS

    def fmt(ms: int) -> str:
        d, r = divmod(ms - day0, DAY_MS)
        pre = prefixes.get(d)
        if pre is None:
            when = epoch + _dt.timedelta(milliseconds=day0 + d * DAY_MS)
            pre = prefixes[d] = when.strftime("%Y-%m-%dT")
        s, m = divmod(r, 1000)
        return pre + sod[s] + mss[m]

    return fmt


class Seller:
    """A selling partner: region, its users, its share of the traffic."""

    __slots__ = ("id", "region", "users", "weight")

    def __init__(self, sid: str, region: str, users: list[str], weight: float) -> None:
        self.id, self.region, self.users, self.weight = sid, region, users, weight


class Dev:
    """A developer account: its own source addresses and staff users."""

    __slots__ = ("apps", "id", "ips", "staff")

    def __init__(self, did: str, ips: list[str], staff: list[str]) -> None:
        self.id, self.ips, self.staff = did, ips, staff
        self.apps: list[App] = []


class App:
    """An application: session kinds, grant roles, keys and sellers."""

    __slots__ = (
        "dev",
        "id",
        "keys",
        "kinds",
        "primary",
        "roles",
        "sellers",
        "start",
        "taken",
        "ua",
        "weight",
    )

    def __init__(
        self,
        aid: str,
        dev: Dev,
        kinds: list[str],
        roles: list[str] | None,
        ua: str,
        start: int,
        weight: float,
    ) -> None:
        self.id, self.dev, self.kinds, self.roles, self.ua = aid, dev, kinds, roles, ua
        self.start, self.weight = start, weight
        self.keys: list[tuple[str, int, int]] = []  # (key_id, active from, active until)
        self.primary: Seller  # set when the pairs are built
        self.sellers: list[Seller] = []
        self.taken: set[str] = set()  # seller ids this app has a pair with (any use)

    def key_at(self, ts: int) -> str:
        """The key the app uses at ``ts``."""
        for key_id, lo, hi in self.keys:
            if lo <= ts < hi:
                return key_id
        return self.keys[-1][0]

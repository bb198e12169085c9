"""Typed detector settings and their parsing from a plain mapping (the TOML tables).

Parsing is pure: the entry points read the file and the environment, then call
``DetectorConfig.from_mapping``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aupwatch.detectors.declare import Severity
from aupwatch.detectors.tuning import ExceptionRule, parse_tuning
from aupwatch.errors import ConfigError
from aupwatch.schemas.times import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_S

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)?\s*$")
_UNITS = {
    "us": 1,
    "ms": 1_000,
    "s": US_PER_S,
    "m": US_PER_MINUTE,
    "h": US_PER_HOUR,
    "d": US_PER_DAY,
}


def parse_duration(value: Any, name: str) -> int:
    """Parses a duration into microseconds.

    Args:
        value: Seconds as a number, or a string such as ``"30s"``, ``"10m"``, ``"90d"``.
        name: The setting's dotted name, for the error message.

    Returns:
        The duration in microseconds.

    Raises:
        ConfigError: The value is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration such as '30s', got {value!r}", key=name)
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"{name} must not be negative", key=name)
        return int(value * US_PER_S)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return int(float(m.group(1)) * _UNITS[m.group(2) or "s"])
    raise ConfigError(
        f"{name} must be a duration such as '30s', '10m', '90d', got {value!r}", key=name
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """A token-bucket usage plan: ``rate`` requests per second, capacity ``burst``."""

    rate: float
    burst: float


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Every setting the detectors read. Times are microseconds."""

    allowed_lateness: int = 30 * US_PER_S
    dedup_horizon: int = 600 * US_PER_S
    dedup_window: int = 3600 * US_PER_S
    roles: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType(
            {
                "getOrderAddress": "pii",
                "getOrderBuyerInfo": "pii",
                "getOrderItemsBuyerInfo": "pii",
                "createRestrictedDataToken": "pii",
                "getReport": "reports",
                "getReportDocument": "reports",
                "createReport": "reports",
            }
        )
    )
    link_horizon: int = 86_400 * US_PER_S
    throttle_window: int = 3600 * US_PER_S
    min_excess_calls: int = 5
    plans: Mapping[str, Plan] = field(
        default_factory=lambda: MappingProxyType(
            {
                "getOrders": Plan(0.0167, 20),
                "getOrder": Plan(0.5, 30),
                "getOrderItems": Plan(0.5, 30),
                "createRestrictedDataToken": Plan(1.0, 10),
                "getListingsRestrictions": Plan(5.0, 10),
            }
        )
    )
    default_plan: Plan = Plan(1.0, 10)
    # call fields that link accounts; addresses and values that link no one
    link_fields: tuple[str, ...] = ("source_ip",)
    link_ignore: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    link_ignore_values: frozenset[str] = frozenset()
    ownership_wait: int = 300 * US_PER_S
    ownership_retention: int = 90 * 86_400 * US_PER_S  # 0: owners are kept forever
    disrespect_window: int = 300 * US_PER_S
    min_throttled: int = 20
    min_share: float = 0.5
    overreach_window: int = 86_400 * US_PER_S
    max_sellers: int = 25
    dormant_after: int = 90 * 86_400 * US_PER_S
    warn_after: int = 60 * 86_400 * US_PER_S
    # opt-in forgetting of states the rules keep forever; 0: kept forever
    authorization_retention: int = 0
    key_retention: int = 0
    sample_size: int = 10
    # tuning: switched-off detectors, severity overrides, exceptions (see tuning.py)
    disabled: frozenset[str] = frozenset()
    severity: Mapping[tuple[str, str], Severity] = field(
        default_factory=lambda: MappingProxyType({})
    )
    exceptions: tuple[ExceptionRule, ...] = ()

    def plan_for(self, operation: str) -> Plan:
        """Returns the usage plan of an operation, or the default plan."""
        return self.plans.get(operation, self.default_plan)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DetectorConfig:
        """Builds the settings from the config file's tables.

        Args:
            data: The parsed TOML document (only the detector tables are read:
                ``time``, ``alerts``, ``roles``, ``throttle``, ``disclosure``, ``dormant``,
                ``throttle_disrespect``, ``internal_overreach``,
                ``unauthorized_seller_access``, ``detectors``, ``exceptions``).

        Returns:
            The settings, defaults filled in.

        Raises:
            ConfigError: A value has the wrong type or range, or a key is unknown.
        """
        base = cls()
        out: dict[str, Any] = {}
        time = _table(data, "time", {"allowed_lateness", "dedup_horizon"})
        for key in ("allowed_lateness", "dedup_horizon"):
            if key in time:
                out[key] = parse_duration(time[key], f"time.{key}")
        alerts = _table(data, "alerts", {"dedup_window", "sample_size"})
        if "dedup_window" in alerts:
            out["dedup_window"] = parse_duration(alerts["dedup_window"], "alerts.dedup_window")
        if "sample_size" in alerts:
            out["sample_size"] = _positive_int(alerts["sample_size"], "alerts.sample_size")
        if "roles" in data:
            roles = data["roles"]
            if not isinstance(roles, Mapping) or not all(
                isinstance(v, str) and v for v in roles.values()
            ):
                raise ConfigError("roles must map operation names to role names", key="roles")
            out["roles"] = MappingProxyType(dict(roles))
        thr = _table(
            data,
            "throttle",
            {
                "link_horizon",
                "link_fields",
                "link_ignore",
                "link_ignore_values",
                "window",
                "min_excess_calls",
                "plans",
                "default_plan",
            },
        )
        out.update(_links(thr))
        if "link_horizon" in thr:
            out["link_horizon"] = parse_duration(thr["link_horizon"], "throttle.link_horizon")
        if "window" in thr:
            out["throttle_window"] = parse_duration(thr["window"], "throttle.window")
        if "min_excess_calls" in thr:
            out["min_excess_calls"] = _positive_int(
                thr["min_excess_calls"], "throttle.min_excess_calls"
            )
        if "plans" in thr:
            plans = thr["plans"]
            if not isinstance(plans, Mapping):
                raise ConfigError("throttle.plans must be a table", key="throttle.plans")
            out["plans"] = MappingProxyType(
                {op: _plan(p, f"throttle.plans.{op}") for op, p in plans.items()}
            )
        if "default_plan" in thr:
            out["default_plan"] = _plan(thr["default_plan"], "throttle.default_plan")
        disclosure = _table(data, "disclosure", {"ownership_wait", "ownership_retention"})
        for key in ("ownership_wait", "ownership_retention"):
            if key in disclosure:
                out[key] = parse_duration(disclosure[key], f"disclosure.{key}")
        out.update(_v2_tables(data))
        dormant = _table(data, "dormant", {"dormant_after", "warn_after", "key_retention"})
        for key in ("dormant_after", "warn_after", "key_retention"):
            if key in dormant:
                out[key] = parse_duration(dormant[key], f"dormant.{key}")
        usa = _table(data, "unauthorized_seller_access", {"authorization_retention"})
        if "authorization_retention" in usa:
            name = "unauthorized_seller_access.authorization_retention"
            out["authorization_retention"] = parse_duration(usa["authorization_retention"], name)
        # the registry imports every detector module, which import this one: load it late
        from aupwatch.detectors.registry import CATALOG

        tuning = parse_tuning(data, CATALOG)
        out["disabled"] = tuning.disabled
        out["severity"] = tuning.severity
        out["exceptions"] = tuning.exceptions
        cfg = cls(**{**{f: getattr(base, f) for f in cls.__dataclass_fields__}, **out})
        if cfg.warn_after and cfg.warn_after >= cfg.dormant_after:
            raise ConfigError(
                "dormant.warn_after must be shorter than dormant.dormant_after",
                key="dormant.warn_after",
            )
        if cfg.key_retention and cfg.key_retention <= cfg.dormant_after:
            # a key forgotten before it goes dormant would never be reported dormant
            raise ConfigError(
                "dormant.key_retention must be 0 (forever) or longer than dormant.dormant_after",
                key="dormant.key_retention",
            )
        return cfg


def _table(data: Mapping[str, Any], name: str, keys: set[str]) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}] must be a table", key=name)
    unknown = set(table) - keys
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{name}]: {', '.join(sorted(unknown))}", key=name)
    return table


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}", key=name)
    return value


def _plan(value: Any, name: str) -> Plan:
    if not isinstance(value, Mapping) or set(value) != {"rate", "burst"}:
        raise ConfigError(f"{name} must be a table with rate and burst", key=name)
    rate, burst = value["rate"], value["burst"]
    for v in (rate, burst):
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise ConfigError(f"{name}: rate and burst must be positive numbers", key=name)
    return Plan(float(rate), float(burst))


LINK_FIELDS = ("source_ip", "user_agent")


def _links(thr: Mapping[str, Any]) -> dict[str, Any]:
    """Parses ``link_fields``, ``link_ignore`` (CIDR networks) and ``link_ignore_values``."""
    out: dict[str, Any] = {}
    if "link_fields" in thr:
        fields = _strings(thr["link_fields"], "throttle.link_fields")
        bad = [f for f in fields if f not in LINK_FIELDS]
        if bad or not fields:
            raise ConfigError(
                f"throttle.link_fields must list some of {', '.join(LINK_FIELDS)}, got {fields!r}",
                key="throttle.link_fields",
            )
        out["link_fields"] = tuple(f for f in LINK_FIELDS if f in fields)
    if "link_ignore" in thr:
        nets = []
        for n, text in enumerate(_strings(thr["link_ignore"], "throttle.link_ignore")):
            try:
                nets.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                name = f"throttle.link_ignore[{n}]"
                raise ConfigError(
                    f"{name} must be a CIDR network such as '10.0.0.0/8', got {text!r}", key=name
                ) from None
        out["link_ignore"] = tuple(nets)
    if "link_ignore_values" in thr:
        values = _strings(thr["link_ignore_values"], "throttle.link_ignore_values")
        out["link_ignore_values"] = frozenset(values)
    return out


def _v2_tables(data: Mapping[str, Any]) -> dict[str, Any]:
    """Parses ``[throttle_disrespect]`` and ``[internal_overreach]``."""
    out: dict[str, Any] = {}
    tdr = _table(data, "throttle_disrespect", {"window", "min_throttled", "min_share"})
    if "window" in tdr:
        out["disrespect_window"] = parse_duration(tdr["window"], "throttle_disrespect.window")
    if "min_throttled" in tdr:
        name = "throttle_disrespect.min_throttled"
        out["min_throttled"] = _positive_int(tdr["min_throttled"], name)
    if "min_share" in tdr:
        share = tdr["min_share"]
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise ConfigError(
                f"throttle_disrespect.min_share must be a number in (0, 1], got {share!r}",
                key="throttle_disrespect.min_share",
            )
        out["min_share"] = float(share)
    ovr = _table(data, "internal_overreach", {"window", "max_sellers"})
    if "window" in ovr:
        out["overreach_window"] = parse_duration(ovr["window"], "internal_overreach.window")
    if "max_sellers" in ovr:
        name = "internal_overreach.max_sellers"
        out["max_sellers"] = _positive_int(ovr["max_sellers"], name)
    return out


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name} must be a list of non-empty strings", key=name)
    return list(value)

"""Typed records of the API-access log contract, version 1.

Times are integer microseconds since the Unix epoch (UTC): exact, cheap to compare and
to serialise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal

KINDS: Final = ("api_call", "authorization", "data_access", "key_event")
KIND_RANK: Final = {"key_event": 0, "authorization": 1, "api_call": 2, "data_access": 3}
REGIONS: Final = ("NA", "EU", "FE")
VIEWER_TYPES: Final = ("seller_user", "internal_user", "external")
AUTH_ACTIONS: Final = ("grant", "revoke")
KEY_ACTIONS: Final = ("created", "rotated", "revoked", "deleted")

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,
)
"""``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)``; ``T`` and ``Z`` in either case.

The pattern of ``$defs/timestamp`` in ``schemas/json/record.schema.json`` is its twin.
"""
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)
_MINUTE_CACHE_SIZE = 16_384
_minute_cache: dict[str, int] = {}


def _minute_us(minute: str) -> int:
    """Microseconds of ``YYYY-MM-DDTHH:MM`` (UTC); validates and caches it.

    Raises:
        ValueError: Not a calendar date, or hour/minute out of range.
    """
    h, mi = int(minute[11:13]), int(minute[14:16])
    if h > 23 or mi > 59:
        raise ValueError("time of day out of range")
    try:
        days = date.fromisoformat(minute[:10]).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ValueError("not a valid calendar date") from None
    us = (days * 1440 + h * 60 + mi) * 60_000_000
    if len(_minute_cache) >= _MINUTE_CACHE_SIZE:
        _minute_cache.clear()
    _minute_cache[minute] = us
    return us


def parse_ts(text: str) -> int:
    """Parses an RFC 3339 timestamp into microseconds since the epoch.

    Accepts ``YYYY-MM-DDTHH:MM:SS``, an optional fraction of any length, and ``Z`` or a
    ``+HH:MM``/``-HH:MM`` offset (``T`` and ``Z`` in either case); the date must exist,
    hours are 00-23, minutes and seconds 00-59 (no leap second), offsets up to 23:59.

    Args:
        text: e.g. ``2026-03-01T10:00:05.250Z`` or ``2026-03-01T12:00:00+02:00``.

    Returns:
        Microseconds since 1970-01-01T00:00:00Z (digits beyond microseconds are cut).

    Raises:
        ValueError: The text is not an RFC 3339 date-time with offset.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time with offset: {text[:64]!r}")
    minute, ss, frac, sign, oh, om = m.groups()
    us = _minute_cache.get(minute)
    if us is None:
        try:
            us = _minute_us(minute)
        except ValueError as exc:
            raise ValueError(f"{exc}: {text[:64]!r}") from None
    s = int(ss)
    if s > 59:
        raise ValueError(f"time of day out of range: {text[:64]!r}")
    us += s * 1_000_000
    if frac:
        us += int(frac[:6].ljust(6, "0"))
    if sign:
        o_h, o_m = int(oh), int(om)
        if o_h > 23 or o_m > 59:
            raise ValueError(f"offset out of range: {text[:64]!r}")
        off = (o_h * 60 + o_m) * 60_000_000
        us = us - off if sign == "+" else us + off
    return us


def format_ts(us: int) -> str:
    """Formats microseconds since the epoch as RFC 3339 UTC with ``Z``.

    Args:
        us: Microseconds since the epoch, within years 0001-9999.

    Returns:
        ``YYYY-MM-DDTHH:MM:SSZ``, with ``.ffffff`` only when the time has a fraction.

    Raises:
        OverflowError: The time is outside years 0001-9999.
    """
    dt = _EPOCH + timedelta(microseconds=us)
    if dt.microsecond:
        return dt.isoformat(timespec="microseconds") + "Z"
    return dt.isoformat(timespec="seconds") + "Z"


@dataclass(frozen=True, slots=True)
class ApiCall:
    """An application called the marketplace API on behalf of a seller."""

    event_id: str
    ts: int
    region: str
    developer_id: str
    app_id: str
    key_id: str
    seller_id: str
    operation: str
    status: int
    source_ip: str
    resource_ids: tuple[str, ...] = ()
    user_agent: str | None = None
    latency_ms: float | None = None
    kind: Literal["api_call"] = "api_call"


@dataclass(frozen=True, slots=True)
class Authorization:
    """A seller granted or revoked an application's authorization."""

    event_id: str
    ts: int
    app_id: str
    seller_id: str
    action: str
    roles: tuple[str, ...] = ()
    expires_at: int | None = None
    developer_id: str | None = None
    kind: Literal["authorization"] = "authorization"


@dataclass(frozen=True, slots=True)
class DataAccess:
    """The application disclosed seller data to someone."""

    event_id: str
    ts: int
    app_id: str
    resource_ids: tuple[str, ...]
    viewer_type: str
    viewer_id: str
    viewer_seller_id: str | None = None
    channel: str | None = None
    kind: Literal["data_access"] = "data_access"


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """An access key's life-cycle event."""

    event_id: str
    ts: int
    key_id: str
    developer_id: str
    action: str
    app_id: str | None = None
    kind: Literal["key_event"] = "key_event"


Record = ApiCall | Authorization | DataAccess | KeyEvent

"""The one RFC 3339 codec of aupwatch, and the time units.

Times are integer microseconds since the Unix epoch (UTC): exact, cheap to compare and to
serialise. ``parse_ts`` accepts exactly the ``$defs/timestamp`` of
``schemas/json/record.schema.json``; ``format_ts`` writes what it accepts.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Final

US_PER_MS: Final = 1_000
US_PER_S: Final = 1_000_000
US_PER_MINUTE: Final = 60 * US_PER_S
US_PER_HOUR: Final = 3_600 * US_PER_S
US_PER_DAY: Final = 86_400 * US_PER_S
# the generator counts milliseconds
MS_PER_S: Final = 1_000
MS_PER_MINUTE: Final = 60 * MS_PER_S
MS_PER_HOUR: Final = 3_600 * MS_PER_S
MS_PER_DAY: Final = 86_400 * MS_PER_S

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
_CACHE_SIZE = 16_384
# The pattern is fixed-width up to the seconds: ``YYYY-MM-DDTHH`` (13 characters),
# ``:MM:SS``, then the tail ``[.fraction](Z|offset)``. A text is valid exactly when each
# part is, and its time is the sum of theirs: the hours and tails seen valid are cached,
# the 3600 valid ``:MM:SS`` are tabled.
_MINUTE_SECONDS = {
    f":{m:02d}:{s:02d}": m * US_PER_MINUTE + s * US_PER_S for m in range(60) for s in range(60)
}
_hour_cache: dict[str, int] = {}
_tail_cache: dict[str, int] = {}
_day_cache: dict[str, int] = {}
TS_PARTS: Final = (_hour_cache.get, _MINUTE_SECONDS.get, _tail_cache.get)
"""The lookups of ``parse_ts``'s hot path, for a decoder that inlines it (a call costs more
than the lookups): when ``hour(text[:13])``, ``mmss(text[13:19])`` and ``tail(text[19:])``
are all known, ``parse_ts(text)`` is their sum; otherwise call ``parse_ts``."""


def _days(day: str) -> int:
    """Days since the epoch of ``YYYY-MM-DD``; validates and caches it.

    Raises:
        ValueError: Not a calendar date.
    """
    days = _day_cache.get(day)
    if days is None:
        try:
            days = date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            raise ValueError("not a valid calendar date") from None
        _cache(_day_cache, day, days)
    return days


def _cache(cache: dict[str, int], key: str, value: int) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


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
    hour = _hour_cache.get(text[:13])
    if hour is not None:
        mmss = _MINUTE_SECONDS.get(text[13:19])
        tail = _tail_cache.get(text[19:])
        if mmss is not None and tail is not None:
            return hour + mmss + tail
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time with offset: {text[:64]!r}")
    minute_text, ss, frac, sign, oh, om = m.groups()
    h, mi = int(minute_text[11:13]), int(minute_text[14:16])
    if h > 23 or mi > 59:
        raise ValueError(f"time of day out of range: {text[:64]!r}")
    try:
        days = _days(minute_text[:10])
    except ValueError as exc:
        raise ValueError(f"{exc}: {text[:64]!r}") from None
    s = int(ss)
    if s > 59:
        raise ValueError(f"time of day out of range: {text[:64]!r}")
    tail = int(frac[:6].ljust(6, "0")) if frac else 0
    if sign:
        o_h, o_m = int(oh), int(om)
        if o_h > 23 or o_m > 59:
            raise ValueError(f"offset out of range: {text[:64]!r}")
        off = o_h * US_PER_HOUR + o_m * US_PER_MINUTE
        tail = tail - off if sign == "+" else tail + off
    hour = days * US_PER_DAY + h * US_PER_HOUR
    _cache(_hour_cache, text[:13], hour)
    _cache(_tail_cache, text[19:], tail)
    return hour + mi * US_PER_MINUTE + s * US_PER_S + tail


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

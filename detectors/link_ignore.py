"""Which addresses and link values link no one (``link_ignore``, ``link_ignore_values``).

A shared proxy or an SDK's user agent would otherwise link every account behind it; the
throttle linking steps ask this before linking by a value.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig

_CACHE_MAX = 1 << 16


class LinkIgnore:
    """Whether an address or value links no one (``link_ignore``, ``link_ignore_values``)."""

    __slots__ = ("cache", "nets", "values")

    def __init__(self, config: DetectorConfig) -> None:
        self.nets = config.link_ignore
        self.values = config.link_ignore_values
        self.cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.nets or self.values)

    def __call__(self, value: str) -> bool:
        """Whether ``value`` (an address or a link field's value) links no one."""
        hit = self.cache.get(value)
        if hit is None:
            hit = value in self.values
            if not hit and self.nets:
                try:
                    addr = ipaddress.ip_address(value)
                except ValueError:
                    addr = None
                hit = addr is not None and any(addr in net for net in self.nets)
            if len(self.cache) >= _CACHE_MAX:
                self.cache.clear()  # a pure function of the value: bounded memo only
            self.cache[value] = hit
        return hit

"""Settings of detectors version 2: defaults, parsing and the key named by a bad value."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from aupwatch.detectors.config import DetectorConfig
from aupwatch.errors import ConfigError

MIN = 60_000_000
DAY = 86_400_000_000


def test_defaults() -> None:
    cfg = DetectorConfig()
    assert cfg.link_fields == ("source_ip",)
    assert cfg.link_ignore == () and cfg.link_ignore_values == frozenset()
    assert cfg.ownership_wait == 5 * MIN and cfg.ownership_retention == 90 * DAY
    assert (cfg.disrespect_window, cfg.min_throttled, cfg.min_share) == (5 * MIN, 20, 0.5)
    assert (cfg.overreach_window, cfg.max_sellers) == (1440 * MIN, 25)


def test_parsing() -> None:
    cfg = DetectorConfig.from_mapping(
        {
            "throttle": {
                "link_fields": ["user_agent", "source_ip"],
                "link_ignore": ["10.0.0.0/8", "2001:db8::1/32", "192.0.2.7"],
                "link_ignore_values": ["python-requests/2.31"],
            },
            "disclosure": {"ownership_wait": "1m", "ownership_retention": 0},
            "throttle_disrespect": {"window": "2m", "min_throttled": 3, "min_share": 1},
            "internal_overreach": {"window": "12h", "max_sellers": 40},
        }
    )
    assert cfg.link_fields == ("source_ip", "user_agent")
    assert cfg.link_ignore == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    assert cfg.link_ignore_values == {"python-requests/2.31"}
    assert (cfg.ownership_wait, cfg.ownership_retention) == (MIN, 0)
    assert (cfg.disrespect_window, cfg.min_throttled, cfg.min_share) == (2 * MIN, 3, 1.0)
    assert (cfg.overreach_window, cfg.max_sellers) == (720 * MIN, 40)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"throttle": {"link_fields": ["referer"]}}, "throttle.link_fields"),
        ({"throttle": {"link_fields": []}}, "throttle.link_fields"),
        ({"throttle": {"link_fields": "source_ip"}}, "throttle.link_fields"),
        ({"throttle": {"link_ignore": ["10.0.0.0/8", "proxy"]}}, "throttle.link_ignore[1]"),
        ({"throttle": {"link_ignore": ["10.0.0.0/33"]}}, "throttle.link_ignore[0]"),
        ({"throttle": {"link_ignore_values": [""]}}, "throttle.link_ignore_values"),
        ({"disclosure": {"ownership_wait": "soon"}}, "disclosure.ownership_wait"),
        ({"disclosure": {"ownership_retention": -1}}, "disclosure.ownership_retention"),
        ({"disclosure": {"owner_wait": "1m"}}, "disclosure"),
        ({"throttle_disrespect": {"min_share": 0}}, "throttle_disrespect.min_share"),
        ({"throttle_disrespect": {"min_share": 1.5}}, "throttle_disrespect.min_share"),
        ({"throttle_disrespect": {"min_throttled": 0}}, "throttle_disrespect.min_throttled"),
        ({"internal_overreach": {"max_sellers": "25"}}, "internal_overreach.max_sellers"),
        ({"internal_overreach": {"window": "a day"}}, "internal_overreach.window"),
        ({"dormant": {"key_retention": "forever"}}, "dormant.key_retention"),
        ({"dormant": {"key_retention": "90d"}}, "dormant.key_retention"),  # not > dormant_after
        (
            {"dormant": {"dormant_after": "10d", "warn_after": 0, "key_retention": "5d"}},
            "dormant.key_retention",
        ),
        (
            {"unauthorized_seller_access": {"authorization_retention": -1}},
            "unauthorized_seller_access.authorization_retention",
        ),
        ({"unauthorized_seller_access": {"retention": "1d"}}, "unauthorized_seller_access"),
    ],
)
def test_bad_values_name_their_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        DetectorConfig.from_mapping(data)
    assert err.value.context["key"] == key

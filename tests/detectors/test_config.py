"""Unit tests of the detector settings parser (aupwatch.detectors.config)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from aupwatch.detectors.config import DetectorConfig, Plan, parse_duration
from aupwatch.errors import ConfigError

S = 1_000_000


@pytest.mark.parametrize(
    ("value", "us"),
    [
        (30, 30 * S),
        (1.5, 1_500_000),
        (0, 0),
        ("0", 0),
        ("30s", 30 * S),
        ("10m", 600 * S),
        ("24h", 86_400 * S),
        ("90d", 90 * 86_400 * S),
        ("500ms", 500_000),
        ("250us", 250),
        ("2.5h", 9000 * S),
        (" 7 ", 7 * S),
        ("45", 45 * S),
        ("1 m", 60 * S),
    ],
)
def test_parse_duration(value: Any, us: int) -> None:
    assert parse_duration(value, "time.x") == us


@pytest.mark.parametrize(
    "value", [-1, -0.5, True, False, None, "", "abc", "5w", "-5s", "5 s s", "1e3", "s", [], {}]
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ConfigError) as err:
        parse_duration(value, "time.x")
    assert err.value.context.get("key") == "time.x"


def test_from_mapping_empty_is_the_defaults() -> None:
    assert DetectorConfig.from_mapping({}) == DetectorConfig()


def test_deploy_file_holds_the_defaults() -> None:
    path = Path(__file__).resolve().parents[2] / "deploy" / "aupwatch.toml"
    with path.open("rb") as f:
        data = tomllib.load(f)
    assert DetectorConfig.from_mapping(data) == DetectorConfig()


def test_from_mapping_overrides() -> None:
    cfg = DetectorConfig.from_mapping(
        {
            "time": {"allowed_lateness": "1m", "dedup_horizon": 120},
            "alerts": {"dedup_window": "2h", "sample_size": 3},
            "roles": {"getOrders": "orders"},
            "throttle": {
                "link_horizon": "12h",
                "window": "30m",
                "min_excess_calls": 2,
                "plans": {"getOrder": {"rate": 2, "burst": 4}},
                "default_plan": {"rate": 0.5, "burst": 1},
            },
            "dormant": {"dormant_after": "30d", "warn_after": 0},
            "kafka": {"bootstrap_servers": "x:1"},  # other tables are not the detectors' concern
        }
    )
    assert cfg.allowed_lateness == 60 * S and cfg.dedup_horizon == 120 * S
    assert cfg.dedup_window == 7200 * S and cfg.sample_size == 3
    assert dict(cfg.roles) == {"getOrders": "orders"}
    assert cfg.link_horizon == 43_200 * S and cfg.throttle_window == 1800 * S
    assert cfg.min_excess_calls == 2
    assert dict(cfg.plans) == {"getOrder": Plan(2.0, 4.0)}
    assert cfg.plan_for("getOrder") == Plan(2.0, 4.0)
    assert cfg.plan_for("getOrders") == Plan(0.5, 1.0)
    assert cfg.dormant_after == 30 * 86_400 * S and cfg.warn_after == 0


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"time": 5}, "time"),
        ({"time": {"lateness": "5s"}}, "time"),
        ({"time": {"allowed_lateness": "soon"}}, "time.allowed_lateness"),
        ({"time": {"dedup_horizon": -1}}, "time.dedup_horizon"),
        ({"alerts": {"dedup_window": True}}, "alerts.dedup_window"),
        ({"alerts": {"sample_size": 0}}, "alerts.sample_size"),
        ({"alerts": {"sample_size": True}}, "alerts.sample_size"),
        ({"alerts": {"sample_size": "3"}}, "alerts.sample_size"),
        ({"alerts": {"sample_size": 2.0}}, "alerts.sample_size"),
        ({"roles": ["pii"]}, "roles"),
        ({"roles": {"getOrders": 1}}, "roles"),
        ({"roles": {"getOrders": ""}}, "roles"),
        ({"throttle": {"link_horizon": "1y"}}, "throttle.link_horizon"),
        ({"throttle": {"window": None}}, "throttle.window"),
        ({"throttle": {"min_excess_calls": 0}}, "throttle.min_excess_calls"),
        ({"throttle": {"min_excess_calls": -3}}, "throttle.min_excess_calls"),
        ({"throttle": {"plans": 5}}, "throttle.plans"),
        ({"throttle": {"plans": {"getOrder": {"rate": 1}}}}, "throttle.plans.getOrder"),
        (
            {"throttle": {"plans": {"getOrder": {"rate": 1, "burst": 2, "x": 3}}}},
            "throttle.plans.getOrder",
        ),
        ({"throttle": {"plans": {"getOrder": {"rate": 0, "burst": 2}}}}, "throttle.plans.getOrder"),
        (
            {"throttle": {"plans": {"getOrder": {"rate": 1, "burst": -2}}}},
            "throttle.plans.getOrder",
        ),
        (
            {"throttle": {"plans": {"getOrder": {"rate": True, "burst": 2}}}},
            "throttle.plans.getOrder",
        ),
        (
            {"throttle": {"plans": {"getOrder": {"rate": "1", "burst": 2}}}},
            "throttle.plans.getOrder",
        ),
        ({"throttle": {"default_plan": [1, 2]}}, "throttle.default_plan"),
        ({"throttle": {"burst": 3}}, "throttle"),
        ({"dormant": {"warn_after": "90d"}}, "dormant.warn_after"),
        ({"dormant": {"dormant_after": "30d"}}, "dormant.warn_after"),
        ({"dormant": {"dormant_after": "bad"}}, "dormant.dormant_after"),
    ],
)
def test_from_mapping_rejects(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        DetectorConfig.from_mapping(data)
    assert err.value.context.get("key") == key, str(err.value)

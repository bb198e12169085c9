"""The worker tests' data set: generated records with every detector and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from aupwatch.detectors.registry import SEVERITY
from aupwatch.errors import AupwatchError
from aupwatch.schemas.records import parse_ts
from aupwatch.streams.generator.command import GeneratorConfig, generate, write
from tests.streams.harness import reasons, replay_alerts


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    """30,000 generated records with every detector and reason, and replay's verdict.

    The last record opens an alert that only the idle flush decides: no later record
    moves the watermark past it, so every test here also checks that flush.
    """
    tmp = tmp_path_factory.mktemp("data")
    logs = tmp / "logs.jsonl"
    write(generate(GeneratorConfig(seed=7, records=30_000)), logs, tmp / "truth.jsonl")
    with logs.open("ab") as out:
        out.write(orjson.dumps(_unauthorized_call(max(_event_times(logs))[1])) + b"\n")
    dead = tmp / "dead.jsonl"
    expected = replay_alerts(logs, dead)
    every = {(d, r) for d, r in reasons(expected)}
    missing = set(SEVERITY) - every
    assert not missing, f"data set lacks some detector reasons: {sorted(missing)}"
    assert any(a["evidence"]["event_ids"] == ["tail-1"] for a in expected.values())
    return logs, expected, dead


def _event_times(path: Path) -> list[tuple[int, str]]:
    """(microseconds, text) of every valid record's ``ts``."""
    out = []
    for line in path.read_bytes().splitlines():
        try:
            ts = orjson.loads(line)["ts"]
            out.append((parse_ts(ts), ts))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AupwatchError):
            continue
    return out


def _unauthorized_call(ts: str) -> dict[str, Any]:
    """A call for a seller that never authorized the app: a ``no_grant`` alert."""
    return {
        "event_id": "tail-1",
        "kind": "api_call",
        "ts": ts,
        "region": "NA",
        "developer_id": "dev-tail",
        "app_id": "app-tail",
        "key_id": "key-tail",
        "seller_id": "seller-tail",
        "operation": "getOrders",
        "status": 200,
        "source_ip": "192.0.2.1",
    }

"""`aupwatch replay` end to end: ground truth, bad input, exit codes, config."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from aupwatch.streams.generator.command import Generated, GeneratorConfig, generate, write
from tests.detectors.support import SEVERITIES

AUPWATCH = [sys.executable, "-m", "aupwatch.cli"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*AUPWATCH, *args], input=stdin, capture_output=True, timeout=600, check=False
    )


def key(alert: dict[str, Any]) -> tuple[str, str, str]:
    subject = orjson.dumps(alert["subject"], option=orjson.OPT_SORT_KEYS).decode()
    return alert["detector"], alert["reason"], subject


@pytest.fixture(scope="module")
def generated_200k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Generated]:
    """A generated set of 200,000 records with every reason of all seven detectors."""
    logs = tmp_path_factory.mktemp("g200k") / "logs.jsonl.gz"
    gen = generate(GeneratorConfig(seed=2026, records=200_000))
    write(gen, logs)
    return logs, gen


def _compare(truth: list[dict[str, Any]], path: Path) -> Counter[tuple[str, str, str]]:
    """The alerts of ``path`` by key; fails listing misses and extras against ``truth``."""
    found = Counter(key(orjson.loads(x)) for x in path.read_bytes().splitlines())
    expected = Counter(key(t) for t in truth)
    missed, extra = expected - found, found - expected
    assert not missed and not extra, (
        "missed:\n" + "\n".join(map(str, missed)) + "\nextra:\n" + "\n".join(map(str, extra))
    )
    return found


@pytest.mark.slow
def test_replay_reproduces_ground_truth_of_200k_records(
    tmp_path: Path, generated_200k: tuple[Path, Generated]
) -> None:
    logs, gen = generated_200k
    out = run("replay", str(logs), "--alerts", str(tmp_path / "alerts.jsonl"))
    assert out.returncode == 0, out.stderr.decode()
    found = _compare(gen.truth, tmp_path / "alerts.jsonl")
    # every reason of all seven detectors (the tests' own table of the contract)
    assert {(d, r) for d, r, _ in found} == set(SEVERITIES)
    read = gen.stats["records"] + gen.stats["duplicates"]
    assert f"records: {read} read" in out.stderr.decode()


@pytest.mark.slow
def test_replay_reproduces_tuned_ground_truth_of_200k_records(
    tmp_path: Path, generated_200k: tuple[Path, Generated]
) -> None:
    """User-agent linking, an ignored proxy network and SDK agent, and exceptions."""
    logs, gen = generated_200k
    config = tmp_path / "tuned.toml"
    config.write_text(gen.tuned_config, encoding="utf-8")
    alerts, suppressed = tmp_path / "alerts.jsonl", tmp_path / "suppressed.jsonl"
    out = run(
        "replay",
        str(logs),
        "--config",
        str(config),
        "--alerts",
        str(alerts),
        "--suppressed",
        str(suppressed),
    )
    assert out.returncode == 0, out.stderr.decode()
    found = _compare(gen.truth_tuned, alerts)
    hidden = _compare(gen.suppressed_tuned, suppressed)
    assert {(d, r) for d, r, _ in found + hidden} == set(SEVERITIES)
    assert found != Counter(key(t) for t in gen.truth)  # the config changes the verdict
    notes = {orjson.loads(x)["note"] for x in suppressed.read_bytes().splitlines()}
    assert len(notes) == len(hidden)


def test_contract_example_and_summary(tmp_path: Path) -> None:
    lines = [
        b'{"event_id":"e1","kind":"authorization","ts":"2026-03-01T10:00:00Z","app_id":"app-1",'
        b'"seller_id":"S1","action":"grant","roles":["orders"]}',
        b'{"event_id":"e2","kind":"api_call","ts":"2026-03-01T10:00:05.250Z","region":"NA",'
        b'"developer_id":"dev-1","app_id":"app-1","key_id":"k-1","seller_id":"S1",'
        b'"operation":"getOrders","status":200,"source_ip":"203.0.113.7",'
        b'"resource_ids":["111-222-333"]}',
        b'{"event_id":"e3","kind":"data_access","ts":"2026-03-01T10:01:00Z","app_id":"app-1",'
        b'"resource_ids":["111-222-333"],"viewer_type":"seller_user","viewer_id":"u-9",'
        b'"viewer_seller_id":"S2","channel":"ui"}',
    ]
    out = run("replay", "-", stdin=b"\n".join(lines) + b"\n")
    assert out.returncode == 0
    alerts = [orjson.loads(x) for x in out.stdout.splitlines()]
    # e3 also shows data to a user of S2, who never authorized app-1 (unauthorized_viewer)
    assert [(a["detector"], a["reason"], a["subject"]) for a in alerts] == [
        (
            "unauthorized_seller_access",
            "unauthorized_viewer",
            {"app_id": "app-1", "seller_id": "S2"},
        ),
        (
            "cross_seller_disclosure",
            "other_seller",
            {
                "app_id": "app-1",
                "owner_seller_id": "S1",
                "viewer_seller_id": "S2",
                "viewer_type": "seller_user",
            },
        ),
    ]
    err = out.stderr.decode()
    assert "records: 3 read" in err and "api_call 1" in err and "dead letters: 0" in err


BAD = {
    "invalid_json": b'{"event_id": "x1", "kind": ',
    "not_object": b'["a", "b"]',
    "wrong_type": b'{"event_id":"x2","kind":"key_event","ts":"2026-03-01T10:00:00Z",'
    b'"key_id":5,"developer_id":"d","action":"created"}',
    "missing_field": b'{"event_id":"x3","kind":"key_event","ts":"2026-03-01T10:00:00Z",'
    b'"developer_id":"d","action":"created"}',
    "bad_timestamp": b'{"event_id":"x4","kind":"key_event","ts":"2026-02-30T10:00:00Z",'
    b'"key_id":"k","developer_id":"d","action":"created"}',
    "invalid_utf8": b'{"event_id":"x5\xff\xfe","kind":"key_event"}',
    "unknown_kind": b'{"event_id":"x6","kind":"login","ts":"2026-03-01T10:00:00Z"}',
}


def test_bad_input_becomes_dead_letters_and_exit_0(tmp_path: Path) -> None:
    good = (
        b'{"event_id":"g1","kind":"key_event","ts":"2026-03-01T10:00:00Z","key_id":"k",'
        b'"developer_id":"d","action":"created"}'
    )
    huge = b'{"event_id":"big","kind":"key_event","pad":"' + b"x" * (10 * 1024 * 1024) + b'"}'
    body = b"\n".join([good, *BAD.values(), huge, b"", good]) + b"\n"
    src = tmp_path / "bad.jsonl.gz"
    src.write_bytes(gzip.compress(body))
    dead = tmp_path / "dead.jsonl"
    out = run("replay", str(src), "--dead-letters", str(dead))
    assert out.returncode == 0, out.stderr.decode()
    letters = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert Counter(d["reason"] for d in letters) == Counter([*BAD, "too_large"])
    by_reason = {d["reason"]: d for d in letters}
    assert by_reason["invalid_json"]["line"] == 2 and by_reason["too_large"]["line"] == 9
    assert by_reason["invalid_utf8"]["raw_base64"]  # kept byte for byte
    assert by_reason["wrong_type"]["raw"].encode() == BAD["wrong_type"]
    assert all(d["error"] and d["source"] == str(src) for d in letters)
    err = out.stderr.decode()
    assert "records: 2 read" in err and "dead letters: 8" in err and "blank lines: 1" in err


def test_empty_file_is_fine(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    out = run("replay", str(empty))
    assert out.returncode == 0 and out.stdout == b""
    assert "records: 0 read" in out.stderr.decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "/no/such/file.jsonl"], b"cannot read /no/such/file.jsonl"),
        (["replay", "--config", "/no/such.toml", "-"], b"cannot read config file"),
        (["replay", "--alerts", "/no/such/dir/a.jsonl", "-"], b"cannot write"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(args: list[str], message: bytes) -> None:
    out = run(*args, stdin=b"")
    assert out.returncode == 2
    assert message in out.stderr and b"Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_config_value_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[time]\nallowed_lateness = "soon"\n')
    out = run("replay", "--config", str(cfg), "-", stdin=b"")
    assert out.returncode == 2 and b"time.allowed_lateness" in out.stderr
    assert b"Traceback" not in out.stderr


def test_env_override_changes_detection(tmp_path: Path) -> None:
    lines = [
        b'{"event_id":"k1","kind":"key_event","ts":"2026-01-01T00:00:00Z","key_id":"k",'
        b'"developer_id":"d","action":"created"}',
        b'{"event_id":"k2","kind":"key_event","ts":"2026-01-05T00:00:00Z","key_id":"other",'
        b'"developer_id":"d","action":"created"}',
    ]
    env_cmd = [*AUPWATCH, "replay", "-"]
    base = subprocess.run(env_cmd, input=b"\n".join(lines), capture_output=True, check=True)
    assert base.stdout == b""
    quick = subprocess.run(
        env_cmd,
        input=b"\n".join(lines),
        capture_output=True,
        check=True,
        env={
            "AUPWATCH_DORMANT__DORMANT_AFTER": '"3d"',
            "AUPWATCH_DORMANT__WARN_AFTER": "0",
            "PATH": "/usr/bin:/bin",
        },
    )
    alerts = [orjson.loads(x) for x in quick.stdout.splitlines()]
    assert [(a["reason"], a["subject"]["key_id"]) for a in alerts] == [("dormant", "k")]


def test_suppressed_occurrences_are_counted_by_detector_and_reason(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.streams.config import AppConfig
    from aupwatch.streams.ops.metrics import Metrics
    from aupwatch.streams.replay.replay import Replay

    calls = [
        {
            "event_id": f"c{n}",
            "kind": "api_call",
            "ts": f"2026-03-01T10:0{n}:00Z",
            "region": "NA",
            "developer_id": "dev-1",
            "app_id": "app-1",
            "key_id": "k-1",
            "seller_id": seller,
            "operation": "getOrders",
            "status": 200,
            "source_ip": "203.0.113.7",
        }
        for n, seller in enumerate(["S1", "S1", "S2"])
    ]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in calls))
    exception = {
        "detector": "unauthorized_seller_access",
        "subject": {"seller_id": "S1"},
        "note": "TICKET-7",
    }
    config = AppConfig(detectors=DetectorConfig.from_mapping({"exceptions": [exception]}))
    metrics = Metrics(CollectorRegistry())
    alerts: list[dict[str, Any]] = []
    replay = Replay(config, alerts.append, lambda _: None, metrics=metrics)
    replay.feed_file(str(path))
    replay.finish()
    labels = {"detector": "unauthorized_seller_access", "reason": "no_grant"}
    assert metrics.registry.get_sample_value("aupwatch_alerts_suppressed_total", labels) == 2
    assert [a["subject"]["seller_id"] for a in alerts] == ["S2"]
    assert replay.summary.suppressed == Counter({"unauthorized_seller_access/no_grant": 2})


def test_state_size_gauges_follow_every_few_steps_and_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import CollectorRegistry

    from aupwatch.streams.config import AppConfig
    from aupwatch.streams.ops.metrics import Metrics
    from aupwatch.streams.replay import replay as replay_mod

    monkeypatch.setattr(replay_mod, "STEP_EVERY", 2)
    keys = [f"k-{n}" for n in range(9)]
    calls = [
        {
            "event_id": f"c{n}",
            "kind": "api_call",
            "ts": f"2026-03-01T10:00:0{n}Z",
            "region": "NA",
            "developer_id": "dev-1",
            "app_id": "app-1",
            "key_id": key,
            "seller_id": "S1",
            "operation": "getOrders",
            "status": 200,
            "source_ip": "203.0.113.7",
        }
        for n, key in enumerate(keys)
    ]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in calls))
    metrics = Metrics(CollectorRegistry())
    updates: list[int] = []
    original = metrics.set_state_keys

    def counted(detector: str, n: int) -> None:
        if detector == "dormant_key":
            updates.append(n)
        original(detector, n)

    monkeypatch.setattr(metrics, "set_state_keys", counted)
    replay = replay_mod.Replay(AppConfig(), lambda _: None, lambda _: None, metrics=metrics)
    replay.feed_file(str(path))
    # four steps of two records: the fourth updates the gauges, with the 8 records decided
    # up to the watermark (30 s behind the last, so none yet)
    assert updates == [0]
    replay.finish()
    assert updates == [0, 9]  # the end always does
    sample = metrics.registry.get_sample_value(
        "aupwatch_detector_state_keys", {"detector": "dormant_key"}
    )
    assert sample == 9

"""Tests of the synthetic log generator (aupwatch.streams.generator).

Besides the basic properties (determinism, size, noise, bounded disorder), the reference
model in ``reference.py``, written independently of the generator, recomputes the alerts
of every detector but throttle_circumvention from the generated lines and compares them
with the generator's ground truth, under the defaults and under the tuned configuration's
exceptions.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from aupwatch.streams.config import load_config
from aupwatch.streams.generator import command as g
from aupwatch.streams.generator import tuned as tuned_config
from tests.detectors.support import SEVERITIES
from tests.streams.generator.reference import RANK, key_of, reference_alerts, ts_us

REQUIRED: dict[str, dict[str, type]] = {
    "api_call": {
        "region": str,
        "developer_id": str,
        "app_id": str,
        "key_id": str,
        "seller_id": str,
        "operation": str,
        "status": int,
        "source_ip": str,
    },
    "authorization": {"app_id": str, "seller_id": str, "action": str},
    "data_access": {"app_id": str, "resource_ids": list, "viewer_type": str, "viewer_id": str},
    "key_event": {"key_id": str, "developer_id": str, "action": str},
}
SMALL = g.GeneratorConfig(seed=7, records=12_000)


@cache
def gen(seed: int = 7, records: int = 12_000, **kw: Any) -> g.Generated:
    return g.generate(g.GeneratorConfig(seed=seed, records=records, **kw))


def parse(line: bytes) -> dict[str, Any] | None:
    """The record, or None when the line is bad input under the log contract."""
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("event_id"), str):
        return None
    fields = REQUIRED.get(str(rec.get("kind")))
    if fields is None or not isinstance(rec.get("ts"), str):
        return None
    for name, kind in fields.items():
        if type(rec.get(name)) is not kind:
            return None
    try:
        rec["_t"] = ts_us(rec["ts"])
    except ValueError:
        return None
    return rec


def records(generated: g.Generated) -> list[dict[str, Any]]:
    """Valid records, duplicates removed, in decision order (ts, kind rank, event_id)."""
    seen: dict[str, dict[str, Any]] = {}
    for line in generated.lines:
        rec = parse(line)
        if rec is not None:
            seen.setdefault(rec["event_id"], rec)
    return sorted(seen.values(), key=lambda r: (r["_t"], RANK[r["kind"]], r["event_id"]))


def truth_counter(generated: g.Generated, skip: str = "") -> Counter[tuple[str, str, str]]:
    return Counter(
        key_of(t["detector"], t["reason"], t["subject"])
        for t in generated.truth
        if t["detector"] != skip
    )


# ---- basic properties -------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs() -> None:
    a = g.generate(g.GeneratorConfig(seed=11, records=4_000))
    b = g.generate(g.GeneratorConfig(seed=11, records=4_000))
    c = g.generate(g.GeneratorConfig(seed=12, records=4_000))
    assert a.lines == b.lines and a.truth == b.truth
    assert a.lines != c.lines
    assert a.truth != c.truth


@pytest.mark.parametrize("target", [5_000, 20_000])
def test_record_count_near_target(target: int) -> None:
    out = gen(records=target)
    assert abs(len(out.lines) - target) <= 0.03 * target
    assert out.stats["lines"] == len(out.lines)


def test_lines_look_like_the_contract() -> None:
    out = gen()
    valid = [r for r in map(parse, out.lines) if r is not None]
    assert 250 <= sum(map(len, out.lines)) / len(out.lines) <= 380
    assert all(r["ts"].endswith("Z") and len(r["ts"]) == 24 for r in valid)
    assert {r["kind"] for r in valid} == set(RANK)
    ids = Counter(r["event_id"] for r in valid)
    assert all(eid.startswith("e") for eid in ids)


def test_every_detector_and_reason_in_truth() -> None:
    out = gen()
    reasons = Counter((t["detector"], t["reason"]) for t in out.truth)
    assert set(reasons) == set(SEVERITIES)  # the tests' own copy of the contract
    assert all(n >= 3 for n in reasons.values())
    tuned = {(t["detector"], t["reason"]) for t in out.truth_tuned + out.suppressed_tuned}
    assert tuned == set(SEVERITIES)
    for t in out.truth + out.truth_tuned:
        if t["detector"] == "throttle_circumvention":
            ids = t["subject"]["developer_ids"]
            assert ids == sorted(ids) and len(set(ids)) >= 2
            assert set(t["subject"]) == {"region", "seller_id", "operation", "developer_ids"}


def test_malformed_share_and_kinds() -> None:
    out = gen(records=20_000, malformed_rate=0.005)
    bad = [line for line in out.lines if parse(line) is None]
    assert 0.5 * 100 <= len(bad) <= 1.5 * 100
    assert len(bad) == out.stats["malformed"]
    assert all(out.stats["malformed_kinds"][k] > 0 for k in g.MALFORMED_KINDS)
    assert any(not _is_utf8(line) for line in bad)
    assert gen(records=5_000, malformed_rate=0.0).stats["malformed"] == 0


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_duplicates_are_byte_identical_redeliveries() -> None:
    out = gen(records=20_000)
    by_id: dict[str, list[bytes]] = defaultdict(list)
    for line in out.lines:
        rec = parse(line)
        if rec is not None:
            by_id[rec["event_id"]].append(line)
    dups = {eid: lines for eid, lines in by_id.items() if len(lines) > 1}
    assert 20 <= len(dups) <= 60  # duplicate_rate 0.002 of 20,000
    assert all(len(set(lines)) == 1 for lines in dups.values())


@pytest.mark.parametrize("shuffle", [20.0, 5.0, 0.0])
def test_disorder_never_exceeds_shuffle_seconds(shuffle: float) -> None:
    out = gen(records=8_000, shuffle_seconds=shuffle)
    worst, high = 0, None
    for line in out.lines:
        rec = parse(line)
        if rec is None:
            continue
        t = rec["_t"]
        high = t if high is None else max(high, t)
        worst = max(worst, high - t)
    assert worst <= shuffle * 1_000_000
    if shuffle:
        assert worst > shuffle * 1_000_000 / 2


def test_a_grant_is_delivered_after_its_first_call() -> None:
    out = gen()
    first_call: dict[tuple[str, str], int] = {}
    found = 0
    for pos, line in enumerate(out.lines):
        rec = parse(line)
        if rec is None:
            continue
        pair = (rec.get("app_id"), rec.get("seller_id"))
        if rec["kind"] == "api_call":
            first_call.setdefault(pair, pos)  # type: ignore[arg-type]
        elif rec["kind"] == "authorization" and pair in first_call:
            call = parse(out.lines[first_call[pair]])
            assert call is not None
            if rec["action"] == "grant" and rec["_t"] < call["_t"]:
                found += 1
    assert found >= 3


# ---- ground truth ------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"seed": 3, "days": 365, "records": 15_000}])
def test_truth_matches_reference_model(kw: dict[str, Any]) -> None:
    out = gen(**kw)
    ref = reference_alerts(records(out))
    assert ref == truth_counter(out, skip="throttle_circumvention")
    # the tuned config's exceptions hide exactly the alerts it lists as suppressed
    hidden = Counter(key_of(t["detector"], t["reason"], t["subject"]) for t in out.suppressed_tuned)
    assert hidden and all(ref[k] for k in hidden)
    tuned = Counter(
        key_of(t["detector"], t["reason"], t["subject"])
        for t in out.truth_tuned
        if t["detector"] != "throttle_circumvention"
    )
    assert tuned == Counter({k: n for k, n in ref.items() if k not in hidden})


def test_background_alone_raises_nothing() -> None:
    out = gen(records=15_000, breaches=False)
    assert out.truth == []
    recs = records(out)
    assert reference_alerts(recs) == Counter()
    devs_by_ip: dict[str, set[str]] = defaultdict(set)
    for r in recs:
        if r["kind"] == "api_call":
            devs_by_ip[r["source_ip"]].add(r["developer_id"])
    assert all(len(d) == 1 for d in devs_by_ip.values())


def test_only_injected_addresses_and_agents_are_shared() -> None:
    out = gen()
    devs_by: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records(out):
        if r["kind"] == "api_call":
            devs_by[("ip", r["source_ip"])].add(r["developer_id"])
            devs_by[("ua", r["user_agent"])].add(r["developer_id"])
    shared = {v for v, devs in devs_by.items() if len(devs) > 1}
    injected = {("ip", c["shared_ip"]) for c in out.cases if "shared_ip" in c}
    injected |= {("ua", c["user_agent"]) for c in out.cases if "user_agent" in c}
    assert shared == injected
    by_case: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for c in out.cases:
        if c["case"].startswith(("throttle_", "negative_sdk")):
            by_case[c["case"]].add(tuple(c["subject"]["developer_ids"]))

    def groups(truth: list[dict[str, Any]]) -> set[tuple[str, ...]]:
        return {
            tuple(t["subject"]["developer_ids"])
            for t in truth
            if t["detector"] == "throttle_circumvention"
        }

    # defaults: linked by address (the proxy too); tuned: by address or agent, not the proxy
    by_address = by_case["throttle_shared_quota"] | by_case["throttle_agent_via_proxy"]
    assert groups(out.truth) == by_address | by_case["throttle_proxy_address"]
    assert groups(out.truth_tuned) == by_address | by_case["throttle_user_agent_quota"]
    assert not by_case["negative_sdk_user_agent"] & (groups(out.truth) | groups(out.truth_tuned))
    assert tuned_config.PROXY_NETWORK in out.tuned_config
    assert tuned_config.SDK_USER_AGENT in out.tuned_config


def test_new_hard_negatives_are_injected() -> None:
    cases = {c["case"] for c in gen().cases}
    assert {
        "negative_rotated_key_used_by_owner",
        "negative_transient_429s",
        "negative_19_throttled_in_window",
        "negative_throttled_below_half",
        "negative_support_user_24_sellers",
        "negative_sellers_24h_apart",
        "negative_sdk_user_agent",
        "throttle_proxy_address",
        "negative_access_before_ownership_wait",
        "disclosure_ownership_wait",
    } <= cases


def test_key_negatives_and_periodic_warnings() -> None:
    out = gen(seed=5, days=200, records=10_000)
    truth = truth_counter(out)
    keys = {c["case"]: c["key_id"] for c in out.cases if "key_id" in c}
    assert not [k for k in truth if keys["negative_key_every_59_days"] in k[2]]
    # a failed first call does not move the clock: warned 60 days after creation
    failed_first = [k for k in truth if keys["first_call_failed_clock_from_creation"] in k[2]]
    assert {k[1] for k in failed_first} == {"dormant_warning"}
    every_89 = [k for k in truth if keys["key_every_89_days"] in k[2]]
    assert {k[1] for k in every_89} == {"dormant_warning"}
    assert truth[every_89[0]] == 2  # two idle periods of 89 days fit in 200 days


# ---- files and CLI -----------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_write_round_trip(tmp_path: Path, suffix: str) -> None:
    out = gen(records=5_000)
    log, truth = tmp_path / f"log{suffix}", tmp_path / "truth.jsonl"
    g.write(out, log, truth)
    raw = gzip.decompress(log.read_bytes()) if suffix.endswith(".gz") else log.read_bytes()
    assert raw.split(b"\n")[:-1] == out.lines and raw.endswith(b"\n")
    rows = truth.read_bytes().splitlines()
    assert rows == sorted(rows) and len(rows) == len(out.truth)
    assert {tuple(sorted(json.loads(r))) for r in rows} == {("detector", "reason", "subject")}


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="aupwatch")
    g.register(parser.add_subparsers(dest="command"))
    log, truth = tmp_path / "a.jsonl.gz", tmp_path / "a.truth.jsonl"
    args = parser.parse_args(
        [
            "generate",
            "--seed",
            "7",
            "--records",
            "12000",
            "--out",
            str(log),
            "--truth",
            str(truth),
            "--malformed-rate",
            "0.001",
        ]
    )
    assert args.func(args) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and " lines (" in err and "expected alerts" in err
    assert gzip.decompress(log.read_bytes()).split(b"\n")[:-1] == gen().lines
    config = tmp_path / "tuned.toml"
    args = parser.parse_args(
        ["generate", "--records", "12000", "--seed", "7", "--out", str(log), "--truth", str(truth),
         "--tuned", "--tuned-config", str(config)]
    )  # fmt: skip
    assert args.func(args) == 0
    capsys.readouterr()
    assert len(truth.read_bytes().splitlines()) == len(gen().truth_tuned)
    loaded = load_config(config)
    assert loaded.detectors.link_fields == ("source_ip", "user_agent")
    assert len(loaded.detectors.exceptions) == 3
    bad = parser.parse_args(["generate", "--out", str(log), "--sellers", "3"])
    assert bad.func(bad) == 2

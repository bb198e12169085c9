"""Replays every case file under cases/<detector>/ and compares the detector's final alerts
with the case's ``expect`` list (as a multiset).

Records go through the real decode path (JSON line -> ``decode_line``) in the file's order,
and the pipeline is stepped after every record, as a stream would be; see cases/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detectors.support import (
    DETECTORS,
    SEVERITIES,
    build_config,
    case_files,
    case_id,
    contract_problems,
    decode_all,
    diff_report,
    load_case,
    match,
    replay,
)

CASES = case_files()


def _param(path: Path) -> object:
    case = load_case(path)
    marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if case.get("xfail") else []
    return pytest.param(path, id=case_id(path), marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in CASES])
def test_case(path: Path) -> None:
    case = load_case(path)
    detector = path.parent.name
    config = build_config(case.get("config"))
    final, _ = replay(decode_all(case["records"]), config)
    alerts = sorted(
        (a for a in final.values() if a["detector"] == detector),
        key=lambda a: (a["ts"], a["reason"], a["alert_id"]),
    )
    broken = {
        a["alert_id"]: problems
        for a in final.values()
        if (problems := contract_problems(a, config.sample_size))
    }
    assert not broken, f"alerts that break the alert contract: {broken}"
    missing, extra = match(case["expect"], alerts)
    if missing or extra:
        pytest.fail(
            f"{case_id(path)}: {case['description']}\n" + diff_report(missing, extra, alerts),
            pytrace=False,
        )


def test_every_detector_has_cases() -> None:
    names = {p.parent.name for p in CASES}
    assert names == set(DETECTORS)


def test_event_ids_unique_within_a_case_unless_redelivered() -> None:
    # A repeated event_id must be a byte-identical re-delivery, never two different records.
    for path in CASES:
        seen: dict[str, dict] = {}
        for rec in load_case(path)["records"]:
            first = seen.setdefault(rec["event_id"], rec)
            assert first == rec, f"{case_id(path)}: {rec['event_id']} reused for another record"


def test_every_reason_has_a_positive_case() -> None:
    covered = {
        (p.parent.name, e["reason"])
        for p in CASES
        if not (case := load_case(p)).get("xfail")
        for e in case["expect"]
    }
    assert set(SEVERITIES) <= covered, sorted(set(SEVERITIES) - covered)


def test_every_detector_has_a_negative_case() -> None:
    negative = {p.parent.name for p in CASES if not load_case(p)["expect"]}
    assert negative == set(DETECTORS)

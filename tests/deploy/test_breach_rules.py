"""Every reason of every declared detector is covered by a breach rule of the rule file.

The list of detectors and reasons comes from the detector registry (their declarations),
so a new detector or reason without a Prometheus rule fails here.
"""

from __future__ import annotations

import re

import pytest

from aupwatch.detectors.registry import DETECTORS
from tests.deploy import servers
from tests.deploy.promql import label_matchers, rule_expressions

PAIRS = [(d.name, r.code) for d in DETECTORS for r in d.reasons]


def _selects(matchers: list[tuple[str, str, str]], labels: dict[str, str]) -> bool:
    for label, op, value in matchers:
        got = labels.get(label, "")
        hit = re.fullmatch(value, got) is not None if op in ("=~", "!~") else got == value
        if hit != (op in ("=", "=~")):
            return False
    return True


def _covering(detector: str, reason: str) -> list[str]:
    rules = []
    for name, expr in rule_expressions(servers.RULES_FILE).items():
        found = [
            (lb, op, v) for m, lb, op, v in label_matchers(expr) if m == "aupwatch_alerts_total"
        ]
        if found and _selects(found, {"detector": detector, "reason": reason}):
            rules.append(name)
    return rules


@pytest.mark.parametrize(("detector", "reason"), PAIRS)
def test_every_reason_has_exactly_one_breach_rule(detector: str, reason: str) -> None:
    assert len(_covering(detector, reason)) == 1, (detector, reason, _covering(detector, reason))


def test_matcher_semantics() -> None:
    labels = {"detector": "d", "reason": "r"}
    assert _selects([("detector", "=", "d"), ("reason", "!=", "x")], labels)
    assert not _selects([("detector", "=", "d"), ("reason", "!=", "r")], labels)
    assert _selects([("reason", "=~", "r|s")], labels)
    assert not _selects([("reason", "!~", "r|s")], labels)

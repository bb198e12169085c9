"""Prometheus rules and configs checked with the real promtool and amtool.

Besides ``promtool check``/``promtool test``, every comparison, threshold and ``for`` of the
rule file is mutated in turn and the promtool unit tests must then fail: a rule whose tests
would still pass with a wrong expression or threshold is not tested.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aupwatch.detectors.registry import DETECTORS
from tests.deploy import servers
from tests.deploy.promql import COMPARISON, parse_rules

pytestmark = pytest.mark.integration

NEGATE = {">": "<=", "<": ">=", ">=": "<", "<=": ">", "==": "!=", "!=": "=="}


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_rules(monitoring: None) -> None:
    proc = run(servers.require_binary("promtool"), "check", "rules", servers.RULES_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rule_unit_tests_pass(monitoring: None) -> None:
    promtool = servers.require_binary("promtool")
    proc = run(
        promtool, "test", "rules", servers.RULES_TEST_FILE.name, cwd=servers.RULES_TEST_FILE.parent
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_prometheus_config(monitoring: None) -> None:
    proc = run(servers.require_binary("promtool"), "check", "config", servers.PROMETHEUS_CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_alertmanager_config_and_routes(monitoring: None) -> None:
    amtool = servers.binary("amtool")
    if amtool is None:
        pytest.skip("amtool not installed")
    config = f"--config.file={servers.ALERTMANAGER_CONFIG}"
    proc = run(amtool, "check-config", servers.ALERTMANAGER_CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    routes = {
        ("alertname=AupwatchBreach", "detector=cross_seller_disclosure", "severity=critical"): (
            "compliance-pager,compliance-privacy"
        ),
        ("alertname=AupwatchBreach", "detector=unauthorized_seller_access", "severity=high"): (
            "compliance-privacy"
        ),
        ("alertname=AupwatchBreach", "detector=dormant_key", "severity=low"): (
            "compliance-platform"
        ),
        ("alertname=AupwatchDormantKey", "category=breach", "severity=low"): "compliance-summary",
        ("alertname=AupwatchTargetDown", "category=operations", "severity=critical"): "ops-pager",
        ("alertname=AupwatchConsumerLagHigh", "category=operations", "severity=warning"): (
            "ops-webhook"
        ),
    }
    for labels, receivers in routes.items():
        proc = run(
            amtool, "config", "routes", "test", config, f"--verify.receivers={receivers}", *labels
        )
        assert proc.returncode == 0, f"{labels}: {proc.stdout}{proc.stderr}"


def test_every_detectors_breaches_reach_a_compliance_receiver(monitoring: None) -> None:
    # a detector no route names would fall back to the default webhook
    amtool = servers.binary("amtool")
    if amtool is None:
        pytest.skip("amtool not installed")
    config = f"--config.file={servers.ALERTMANAGER_CONFIG}"
    for detector in DETECTORS:
        labels = ("alertname=AupwatchBreach", f"detector={detector.name}", "severity=medium")
        proc = run(amtool, "config", "routes", "test", config, *labels)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip() in {"compliance-privacy", "compliance-platform"}, (
            f"{detector.name}: {proc.stdout}"
        )


def mutants(text: str) -> list[tuple[str, str, str]]:
    """(rule, description, mutated rule file) for every comparison, threshold and ``for``."""
    lines = text.splitlines(keepends=True)
    out = []
    for rule in parse_rules(text):
        expr_block = "".join(lines[rule.expr_start : rule.expr_end])
        head, tail = "".join(lines[: rule.expr_start]), "".join(lines[rule.expr_end :])
        for match in COMPARISON.finditer(expr_block):
            op, number = match.groups()
            value = float(number)
            variants = [(NEGATE[op], number)]
            if value != 0:
                variants += [(op, f"{value * 2:g}"), (op, f"{value / 2:g}")]
            elif op in (">", "=="):
                variants.append((">=", number))
            for new_op, new_number in variants:
                mutated = (
                    expr_block[: match.start()]
                    + f"{new_op} {new_number}"
                    + expr_block[match.end() :]
                )
                what = f"'{op} {number}' -> '{new_op} {new_number}'"
                out.append((rule.name, what, head + mutated + tail))
        if rule.for_line is not None:
            dropped = "".join(lines[: rule.for_line] + lines[rule.for_line + 1 :])
            out.append((rule.name, f"without '{lines[rule.for_line].strip()}'", dropped))
    return out


def test_every_rule_has_mutants() -> None:
    text = servers.RULES_FILE.read_text()
    names = {rule.name for rule in parse_rules(text)}
    assert len(names) >= 15
    assert {name for name, _, _ in mutants(text)} == names


def test_rule_unit_tests_catch_every_mutant(monitoring: None, tmp_path: Path) -> None:
    promtool = servers.require_binary("promtool")
    text = servers.RULES_FILE.read_text()

    def outcome(index: int, rules_text: str) -> tuple[int, str]:
        root = tmp_path / f"m{index}"
        (root / "rules").mkdir(parents=True)
        (root / "tests").mkdir()
        (root / "rules" / servers.RULES_FILE.name).write_text(rules_text)
        shutil.copy(servers.RULES_TEST_FILE, root / "tests" / servers.RULES_TEST_FILE.name)
        proc = run(promtool, "test", "rules", servers.RULES_TEST_FILE.name, cwd=root / "tests")
        return proc.returncode, proc.stdout + proc.stderr

    # Control: the copied layout itself passes, so a failure below is due to the mutation.
    code, output = outcome(-1, text)
    assert code == 0, output
    cases = mutants(text)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda item: outcome(item[0], item[1][2]), enumerate(cases)))
    # A mutant counts as caught only when a test of the mutated rule itself fails.
    survivors = [
        f"{name}: {what}"
        for (name, what, _), (code, output) in zip(cases, results, strict=True)
        if code == 0 or f"alertname: {name}," not in output
    ]
    assert not survivors, "promtool tests still pass with these rule changes:\n" + "\n".join(
        survivors
    )

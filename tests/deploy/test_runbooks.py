"""Every alert rule links its runbook in docs/operations.md, and the runbook covers every reason.

Anchors are computed as GitHub renders them: a heading's text in lower case, punctuation
other than ``-`` and ``_`` dropped, spaces as ``-``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.deploy import servers
from tests.deploy.promql import parse_rules

OPERATIONS = servers.REPO_ROOT / "docs" / "operations.md"
ALERT_SCHEMA = servers.REPO_ROOT / "schemas" / "json" / "alert.schema.json"
K8S_RULES = servers.DEPLOY / "k8s" / "prometheusrule.yaml"
RUNBOOK = re.compile(r"^\s*runbook_url:\s*(\S+)\s*$")


def slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> list[str]:
    body = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)  # no headings in code
    return [slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", body, flags=re.M)]


def runbooks(path: Path) -> dict[str, list[str]]:
    """Alert name -> the runbook_url values of its rule."""
    lines = path.read_text().splitlines()
    return {
        rule.name: [
            m.group(1) for line in lines[rule.start : rule.end] if (m := RUNBOOK.match(line))
        ]
        for rule in parse_rules(path.read_text())
    }


def test_headings_are_unique() -> None:
    found = anchors(OPERATIONS.read_text())
    assert len(found) == len(set(found)), sorted(a for a in found if found.count(a) > 1)


@pytest.mark.parametrize("path", [servers.RULES_FILE, K8S_RULES], ids=["rules", "k8s"])
def test_every_rule_links_its_section_of_operations_md(path: Path) -> None:
    sections = set(anchors(OPERATIONS.read_text()))
    rules = runbooks(path)
    assert len(rules) >= 15
    for name, urls in rules.items():
        assert len(urls) == 1, f"{name}: expected one runbook_url, found {urls}"
        page, _, anchor = urls[0].partition("#")
        assert page.startswith("https://") and page.endswith("/docs/operations.md"), name
        assert anchor == name.lower() and anchor in sections, f"{name}: no section #{anchor}"


def test_every_detector_and_reason_has_a_section() -> None:
    schema = json.loads(ALERT_SCHEMA.read_text())
    pairs = [
        (case["if"]["properties"]["detector"]["const"], reason)
        for case in schema["allOf"]
        for reason in case["then"]["properties"]["reason"]["enum"]
    ]
    assert len(pairs) >= 11
    sections = set(anchors(OPERATIONS.read_text()))
    missing = [f"{d}/{r}" for d, r in pairs if d not in sections or r not in sections]
    assert not missing, f"docs/operations.md has no section for {missing}"


def test_links_inside_operations_md_resolve() -> None:
    text = OPERATIONS.read_text()
    sections = set(anchors(text))
    broken = [a for a in re.findall(r"\]\(#([^)]+)\)", text) if a not in sections]
    assert not broken, broken

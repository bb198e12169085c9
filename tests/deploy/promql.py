"""Small text helpers over the project's rule file, dashboard and PromQL (no YAML parser).

The rule file follows a fixed layout (``- alert: Name`` then ``expr:`` with a plain or ``>-``
folded value, then ``for:``/``labels:``/``annotations:`` at the same indentation), which is
all these helpers rely on; ``promtool check rules`` validates the real YAML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ALERT = re.compile(r"^(\s*)- alert:\s*(\S+)\s*$")
_GROUP = re.compile(r"^\s*- name:")
_KEY = re.compile(r"^(\s*)(\w+):(.*)$")

# Comparison with a number: ``> 0.01``, ``== 0``; not ``=~`` / ``!~`` label matchers.
COMPARISON = re.compile(
    r"(?<![=!<>~])(==|!=|>=|<=|>|<)(?![=~])\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])"
)
PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
    | {"and", "or", "unless", "offset", "inf", "nan", "atan2", "start", "end"}
    # Aggregations may be followed by ``by (...)`` instead of their argument.
    | {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile"}
)
PROMETHEUS_BUILTINS = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"})


@dataclass(frozen=True)
class Rule:
    """One alerting rule of the rule file, with line spans (end exclusive)."""

    name: str
    start: int
    end: int
    expr_start: int
    expr_end: int
    expr: str
    for_line: int | None


def parse_rules(text: str) -> list[Rule]:
    """Split a rule file into its alerting rules."""
    lines = text.splitlines()
    starts = [(i, m) for i, line in enumerate(lines) if (m := _ALERT.match(line))]
    rules = []
    for n, (start, match) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        for j in range(start + 1, end):
            if _GROUP.match(lines[j]):
                end = j
                break
        key_indent = len(match.group(1)) + 2
        expr_start = expr_end = -1
        for_line = None
        for j in range(start + 1, end):
            key = _KEY.match(lines[j])
            if key and len(key.group(1)) == key_indent:
                if expr_start >= 0 and expr_end < 0:
                    expr_end = j
                if key.group(2) == "expr":
                    expr_start = j
                elif key.group(2) == "for":
                    for_line = j
        if expr_start < 0:
            raise ValueError(f"rule {match.group(2)} has no expr")
        if expr_end < 0:
            expr_end = end
        first = lines[expr_start].split("expr:", 1)[1].strip()
        body = [] if first in (">-", ">", "|", "|-") else [first]
        body += [line.strip() for line in lines[expr_start + 1 : expr_end]]
        expr = " ".join(part for part in body if part).strip().strip("'\"")
        rules.append(Rule(match.group(2), start, end, expr_start, expr_end, expr, for_line))
    return rules


def rule_expressions(path: Path) -> dict[str, str]:
    """Alert name -> PromQL expression of a rule file."""
    return {rule.name: rule.expr for rule in parse_rules(path.read_text())}


def dashboard_queries(path: Path) -> list[str]:
    """Every PromQL query of a Grafana dashboard: targets, annotations, variables."""
    dashboard = json.loads(path.read_text())
    queries: list[str] = []

    def panels(items: list[dict[str, Any]]) -> None:
        for panel in items:
            queries.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            panels(panel.get("panels", []))

    panels(dashboard.get("panels", []))
    for note in dashboard.get("annotations", {}).get("list", []):
        if note.get("expr"):
            queries.append(note["expr"])
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and query:
            queries.append(query)
    return queries


def _strip(expr: str) -> str:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"'(?:[^'\\]|\\.)*'", "''", expr)
    expr = re.sub(r"\$\{[^}]*\}|\$\w+", "", expr)
    expr = re.sub(r"\{[^}]*\}", "{}", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    return re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression (or Grafana ``label_values`` query) selects."""
    names = set()
    label_values = re.match(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)", expr)
    if label_values:
        return {label_values.group(1)}
    stripped = _strip(expr)
    for match in re.finditer(r"(?<![\w.:$])[a-zA-Z_:][\w:]*", stripped):
        token = match.group(0)
        rest = stripped[match.end() :].lstrip()
        if rest.startswith("(") or token in PROMQL_KEYWORDS:
            continue
        names.add(token)
    return names


def label_matchers(expr: str) -> list[tuple[str, str, str, str]]:
    """(metric, label, operator, value) of every selector with a metric name."""
    expr = re.sub(r"\$\{[^}]*\}", "$var", expr)
    found = []
    for selector in re.finditer(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", expr):
        for matcher in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', selector.group(2)):
            label, op, value = matcher.groups()
            found.append((selector.group(1), label, op, value))
    label_values = re.match(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)[^,]*,\s*(\w+)\s*\)", expr)
    if label_values:
        found.append((label_values.group(1), label_values.group(2), "label_values", ""))
    return found

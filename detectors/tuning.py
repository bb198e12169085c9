"""Tuning of the detectors: switches, severity overrides and exceptions.

They come from the ``[detectors.<name>]`` tables and the ``[[exceptions]]`` array of the
config file.

Parsing is pure: it receives the parsed TOML document and the detector declarations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aupwatch.detectors.declare import Detector, Severity
from aupwatch.errors import ConfigError
from aupwatch.schemas.records import parse_ts

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EXCEPTION_KEYS = {"detector", "reason", "subject", "until", "note"}


@dataclass(frozen=True, slots=True)
class ExceptionRule:
    """One ``[[exceptions]]`` entry.

    Attributes:
        index: Position in the config array (names it: ``exceptions[<index>]``).
        detector: The detector it applies to.
        reason: The reason it applies to; None for every reason of the detector.
        subject: Fields that must equal the alert subject's (a frozenset: a list field,
            compared as a set).
        until: Event time (microseconds) from which it no longer applies; None: forever.
        note: Why the exception exists (e.g. a ticket).
    """

    index: int
    detector: str
    reason: str | None
    subject: Mapping[str, str | frozenset[str]]
    until: int | None
    note: str

    @property
    def name(self) -> str:
        """The config key of this entry."""
        return f"exceptions[{self.index}]"

    def covers(self, reason: str, subject: Mapping[str, Any], at: int) -> bool:
        """Whether an occurrence of this detector at event time ``at`` is excepted."""
        if self.reason is not None and self.reason != reason:
            return False
        if self.until is not None and at >= self.until:
            return False
        for name, want in self.subject.items():
            got = subject.get(name)
            if isinstance(want, frozenset):
                if not isinstance(got, list) or frozenset(got) != want:
                    return False
            elif got != want:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Tuning:
    """The parsed tuning settings."""

    disabled: frozenset[str]
    severity: Mapping[tuple[str, str], Severity]
    exceptions: tuple[ExceptionRule, ...]


def parse_tuning(data: Mapping[str, Any], catalog: Mapping[str, Detector]) -> Tuning:
    """Parses ``[detectors.<name>]`` and ``[[exceptions]]``.

    Args:
        data: The parsed config document.
        catalog: The declared detectors by name.

    Returns:
        The tuning settings.

    Raises:
        ConfigError: An entry is invalid; ``key`` names it (e.g. ``exceptions[2].until``).
    """
    disabled: set[str] = set()
    severity: dict[tuple[str, str], Severity] = {}
    tables = data.get("detectors", {})
    if not isinstance(tables, Mapping):
        raise ConfigError("[detectors] must be a table", key="detectors")
    for name, table in tables.items():
        where = f"detectors.{name}"
        detector = catalog.get(name)
        if detector is None:
            raise ConfigError(f"unknown detector {name!r}", key=where)
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{where}] must be a table", key=where)
        unknown = set(table) - {"enabled", "severity"}
        if unknown:
            raise ConfigError(
                f"unknown setting(s) in [{where}]: {', '.join(sorted(unknown))}", key=where
            )
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled must be true or false", key=f"{where}.enabled")
        if not enabled:
            disabled.add(name)
        overrides = table.get("severity", {})
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"[{where}.severity] must be a table", key=f"{where}.severity")
        for code, value in overrides.items():
            key = f"{where}.severity.{code}"
            _reason(detector, code, key)
            try:
                severity[(name, code)] = Severity(value)
            except ValueError:
                allowed = ", ".join(s.value for s in Severity)
                raise ConfigError(f"{key} must be one of {allowed}", key=key) from None
    entries = data.get("exceptions", [])
    if not isinstance(entries, list):
        raise ConfigError("exceptions must be an array of tables", key="exceptions")
    rules = tuple(_exception(i, entry, catalog) for i, entry in enumerate(entries))
    return Tuning(frozenset(disabled), MappingProxyType(severity), rules)


def _reason(detector: Detector, code: Any, key: str) -> str:
    if not isinstance(code, str) or code not in {r.code for r in detector.reasons}:
        raise ConfigError(f"{detector.name} has no reason {code!r}", key=key)
    return code


def _exception(index: int, entry: Any, catalog: Mapping[str, Detector]) -> ExceptionRule:
    where = f"exceptions[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table", key=where)
    unknown = set(entry) - _EXCEPTION_KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(sorted(unknown))}", key=where)
    name = entry.get("detector")
    detector = catalog.get(name) if isinstance(name, str) else None
    if detector is None:
        raise ConfigError(f"{where}.detector must name a detector", key=f"{where}.detector")
    reason = entry.get("reason")
    fields = detector.subject_fields
    if reason is not None:
        _reason(detector, reason, f"{where}.reason")
        fields = frozenset(detector.reason(reason).subject)
    note = entry.get("note")
    if not isinstance(note, str) or not note.strip():
        raise ConfigError(f"{where}.note is required (why: e.g. a ticket)", key=f"{where}.note")
    subject = entry.get("subject", {})
    if not isinstance(subject, Mapping):
        raise ConfigError(f"{where}.subject must be a table", key=f"{where}.subject")
    parsed: dict[str, str | frozenset[str]] = {}
    for field, value in subject.items():
        key = f"{where}.subject.{field}"
        if field not in fields:
            raise ConfigError(f"{detector.name} alerts have no subject field {field!r}", key=key)
        if field in detector.list_fields:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{key} must be a list of strings", key=key)
            parsed[field] = frozenset(value)
        elif isinstance(value, str):
            parsed[field] = value
        else:
            raise ConfigError(f"{key} must be a string", key=key)
    until = _until(entry["until"], f"{where}.until") if "until" in entry else None
    return ExceptionRule(index, detector.name, reason, MappingProxyType(parsed), until, note)


def _until(value: Any, key: str) -> int:
    # TOML reads an unquoted date-time as a datetime: accepted when it has an offset
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    if isinstance(value, str):
        try:
            return parse_ts(value)
        except ValueError:
            pass
    raise ConfigError(f"{key} must be an RFC 3339 date-time with offset, got {value!r}", key=key)

"""The JSON Schema files of the log and alert contracts, and validators over them.

The schemas (draft 2020-12) are package data under ``schemas/json/``; they refer to each
other by ``$id`` (``https://aupwatch.example/schemas/v1/<name>``). This module is for
tests and tooling: the runtime path is ``schemas.decode``, which accepts exactly what
``record.schema.json`` accepts. ``jsonschema`` (a dev dependency) is imported only when a
validator is asked for.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from referencing import Registry

SCHEMA_FILES: Final = (
    "record.schema.json",
    "api_call.schema.json",
    "authorization.schema.json",
    "data_access.schema.json",
    "key_event.schema.json",
    "alert.schema.json",
)
"""Every schema file shipped in ``schemas/json/``."""

_REQUIRED_FORMATS: Final = ("date-time", "ipv4", "ipv6")


class SchemaValidator(Protocol):
    """The part of ``jsonschema.protocols.Validator`` that callers use."""

    schema: dict[str, Any]

    def is_valid(self, instance: object) -> bool:
        """Tells whether the instance is valid."""
        ...

    def iter_errors(self, instance: object) -> Iterator[Any]:
        """Yields every ``jsonschema.ValidationError`` of the instance."""
        ...

    def validate(self, instance: object) -> None:
        """Raises the best ``jsonschema.ValidationError`` of an invalid instance."""
        ...


def load_schema(name: str) -> dict[str, Any]:
    """Reads one schema file from the package.

    Args:
        name: A file name from ``SCHEMA_FILES``, e.g. ``"api_call.schema.json"``.

    Returns:
        The schema as a fresh JSON object.

    Raises:
        ValueError: The name is not one of ``SCHEMA_FILES``.
    """
    if name not in SCHEMA_FILES:
        raise ValueError(f"unknown schema {name!r}; one of {', '.join(SCHEMA_FILES)}")
    text = resources.files("aupwatch.schemas").joinpath("json", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def registry() -> Registry[Any]:
    """Returns a ``referencing`` registry holding every schema file under its ``$id``."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources_ = [
        Resource.from_contents(load_schema(name), default_specification=DRAFT202012)
        for name in SCHEMA_FILES
    ]
    reg: Registry[Any] = Registry().with_resources((r.id() or "", r) for r in resources_)
    return reg.crawl()


@functools.cache
def validator(name: str = "record.schema.json") -> SchemaValidator:
    """Returns a draft 2020-12 validator of one schema file, with ``format`` enforced.

    Args:
        name: A file name from ``SCHEMA_FILES``; the default validates any record.

    Returns:
        A ``jsonschema.Draft202012Validator`` (cached: one per name).

    Raises:
        ValueError: The name is not one of ``SCHEMA_FILES``.
        RuntimeError: A format the schemas need cannot be checked (a missing extra such
            as ``rfc3339-validator``), so ``format`` would silently pass.
    """
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker()
    missing = [f for f in _REQUIRED_FORMATS if f not in checker.checkers]
    if missing:
        raise RuntimeError(
            f"jsonschema cannot check format(s) {', '.join(missing)}; "
            "install jsonschema[format] with rfc3339-validator"
        )
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    checked: SchemaValidator = Draft202012Validator(
        schema, registry=registry(), format_checker=checker
    )
    return checked


def record_validator(kind: str | None = None) -> SchemaValidator:
    """Returns the validator of a record, of any kind or of one kind.

    Args:
        kind: ``api_call``, ``authorization``, ``data_access`` or ``key_event``; ``None``
            for ``record.schema.json`` (any kind).

    Returns:
        The cached validator.

    Raises:
        ValueError: Unknown kind.
    """
    return validator("record.schema.json" if kind is None else f"{kind}.schema.json")


def alert_validator() -> SchemaValidator:
    """Returns the validator of ``alert.schema.json`` (the alert contract)."""
    return validator("alert.schema.json")

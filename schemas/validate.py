"""The precise validation of a decoded record: the exact dead-letter reason and message.

``validate_object`` accepts exactly what ``schemas/json/record.schema.json`` accepts
(draft 2020-12 semantics: ``200.0`` is an integer). It is the reference of the msgspec
path (``schemas.structs``) and the path of every record that one cannot vouch for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import orjson

from aupwatch.schemas.errors import BadRecord
from aupwatch.schemas.records import (
    AUTH_ACTIONS,
    KEY_ACTIONS,
    REGIONS,
    VIEWER_TYPES,
    ApiCall,
    Authorization,
    DataAccess,
    KeyEvent,
    Record,
)
from aupwatch.schemas.times import parse_ts

DEFAULT_MAX_RECORD_BYTES = 1 << 20
# joins the texts of a state key (``detectors.declare.SEP``): no text of a record holds it
SEPARATOR = "\x1f"

ip_cache: dict[str, bool] = {}
"""``source_ip`` texts seen, and whether each is an address (shared with the msgspec path)."""


def _missing(name: str) -> BadRecord:
    return BadRecord("missing_field", f"required field {name!r} is missing")


def _wrong(name: str, want: str, value: Any) -> BadRecord:
    return BadRecord("wrong_type", f"field {name!r} must be {want}, got {type(value).__name__}")


def _req_str(obj: dict[str, Any], name: str) -> str:
    try:
        value = obj[name]
    except KeyError:
        raise _missing(name) from None
    if type(value) is not str:
        raise _wrong(name, "a string", value)
    if not value:
        raise BadRecord("bad_value", f"field {name!r} must not be empty")
    return value


def _opt_str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        if name in obj:
            raise _wrong(name, "a string", value)
        return None
    if type(value) is not str:
        raise _wrong(name, "a string", value)
    return value


def _integer(obj: dict[str, Any], name: str) -> int:
    """Slow path of a required integer: JSON Schema semantics, so ``200.0`` is 200."""
    try:
        value = obj[name]
    except KeyError:
        raise _missing(name) from None
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise _wrong(name, "an integer", value)


def _enum(obj: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = _req_str(obj, name)
    if value not in allowed:
        raise BadRecord("bad_value", f"field {name!r} must be one of {', '.join(allowed)}")
    return value


def _str_list(obj: dict[str, Any], name: str, *, required: bool) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None:
        if name in obj:
            raise _wrong(name, "an array of strings", value)
        if required:
            raise _missing(name)
        return ()
    if type(value) is not list:
        raise _wrong(name, "an array of strings", value)
    for item in value:
        if type(item) is not str:
            raise _wrong(name, "an array of strings", item)
    if required and not value:
        raise BadRecord("bad_value", f"field {name!r} must not be empty")
    return tuple(value)


def _timestamp(obj: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = obj.get(name)
    if value is None:
        if name in obj:
            raise _wrong(name, "an RFC 3339 string", value)
        if required:
            raise _missing(name)
        return None
    if type(value) is not str:
        raise _wrong(name, "an RFC 3339 string", value)
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise BadRecord("bad_timestamp", f"field {name!r}: {exc}") from None


def ip_ok(value: str) -> bool:
    """Tells whether a text is an IPv4 or IPv6 address without a zone; caches the verdict.

    Args:
        value: The ``source_ip`` text.

    Returns:
        True when the JSON Schema's ``ipv4`` or ``ipv6`` format accepts it.
    """
    ok = ip_cache.get(value)
    if ok is None:
        try:
            # A zone (``fe80::1%eth0``) is not part of an address (RFC 4291 2.2).
            ok = not getattr(ipaddress.ip_address(value), "scope_id", None)
        except ValueError:
            ok = False
        if len(ip_cache) > 100_000:
            ip_cache.clear()
        ip_cache[value] = ok
    return ok


def _ip(obj: dict[str, Any], name: str) -> str:
    value = _req_str(obj, name)
    if not ip_ok(value):
        raise BadRecord("bad_value", f"field {name!r} must be an IPv4 or IPv6 address")
    return value


def _api_call(obj: dict[str, Any], event_id: str, ts: int) -> ApiCall:
    # The hot path: each field is checked inline and only a failure (or a rare form such
    # as an integral float) goes through the helpers, which raise the precise error.
    # The order of the checks (status, latency, then the fields in ApiCall's order) is
    # unchanged, so a record with several faults keeps its reason.
    get = obj.get
    status = get("status")
    if type(status) is not int:
        status = _integer(obj, "status")
    if not 100 <= status <= 599:
        raise BadRecord("bad_value", "field 'status' must be between 100 and 599")
    latency = get("latency_ms")
    if latency is not None or "latency_ms" in obj:
        if type(latency) is not float and type(latency) is not int:
            raise _wrong("latency_ms", "a number", latency)
        if latency < 0:
            raise BadRecord("bad_value", "field 'latency_ms' must be >= 0")
    region = get("region")
    if region not in REGIONS:
        region = _enum(obj, "region", REGIONS)
    developer_id = get("developer_id")
    if type(developer_id) is not str or not developer_id:
        developer_id = _req_str(obj, "developer_id")
    app_id = get("app_id")
    if type(app_id) is not str or not app_id:
        app_id = _req_str(obj, "app_id")
    key_id = get("key_id")
    if type(key_id) is not str or not key_id:
        key_id = _req_str(obj, "key_id")
    seller_id = get("seller_id")
    if type(seller_id) is not str or not seller_id:
        seller_id = _req_str(obj, "seller_id")
    operation = get("operation")
    if type(operation) is not str or not operation:
        operation = _req_str(obj, "operation")
    source_ip = get("source_ip")
    if type(source_ip) is not str or ip_cache.get(source_ip) is not True:
        source_ip = _ip(obj, "source_ip")
    resource_ids = get("resource_ids")
    if type(resource_ids) is list:
        for item in resource_ids:
            if type(item) is not str:
                raise _wrong("resource_ids", "an array of strings", item)
        resource_ids = tuple(resource_ids)
    else:
        resource_ids = _str_list(obj, "resource_ids", required=False)
    user_agent: str | None = get("user_agent")
    if type(user_agent) is not str:
        user_agent = _opt_str(obj, "user_agent")
    return ApiCall(
        event_id,
        ts,
        region,
        developer_id,
        app_id,
        key_id,
        seller_id,
        operation,
        status,
        source_ip,
        resource_ids,
        user_agent,
        latency,
    )


def _authorization(obj: dict[str, Any], event_id: str, ts: int) -> Authorization:
    # the checks run in field order, so a record with several faults keeps its reason
    app_id = _req_str(obj, "app_id")
    seller_id = _req_str(obj, "seller_id")
    action = _enum(obj, "action", AUTH_ACTIONS)
    roles = _str_list(obj, "roles", required=False)
    expires_at = _timestamp(obj, "expires_at", required=False)
    developer_id = _opt_str(obj, "developer_id")
    return Authorization(
        event_id,
        ts,
        app_id,
        seller_id,
        action,
        roles,
        expires_at,
        developer_id,
    )


def _data_access(obj: dict[str, Any], event_id: str, ts: int) -> DataAccess:
    viewer_type = _enum(obj, "viewer_type", VIEWER_TYPES)
    viewer_seller: str | None
    if viewer_type == "seller_user":
        viewer_seller = _req_str(obj, "viewer_seller_id")
    else:
        viewer_seller = _opt_str(obj, "viewer_seller_id")
    app_id = _req_str(obj, "app_id")
    resource_ids = _str_list(obj, "resource_ids", required=True)
    viewer_id = _req_str(obj, "viewer_id")
    channel = _opt_str(obj, "channel")
    return DataAccess(
        event_id,
        ts,
        app_id,
        resource_ids,
        viewer_type,
        viewer_id,
        viewer_seller,
        channel,
    )


def _key_event(obj: dict[str, Any], event_id: str, ts: int) -> KeyEvent:
    key_id = _req_str(obj, "key_id")
    developer_id = _req_str(obj, "developer_id")
    action = _enum(obj, "action", KEY_ACTIONS)
    app_id = _opt_str(obj, "app_id")
    return KeyEvent(
        event_id,
        ts,
        key_id,
        developer_id,
        action,
        app_id,
    )


_BUILDERS: dict[str, Callable[[dict[str, Any], str, int], Record]] = {
    "api_call": _api_call,
    "authorization": _authorization,
    "data_access": _data_access,
    "key_event": _key_event,
}


def _kind_error(obj: dict[str, Any]) -> BadRecord:
    kind = obj.get("kind")
    if kind is None and "kind" not in obj:
        return _missing("kind")
    if type(kind) is not str:
        return _wrong("kind", "a string", kind)
    return BadRecord("unknown_kind", f"unknown record kind {kind[:64]!r}")


def _check_version(version: Any) -> None:
    if type(version) is float and version.is_integer():
        version = int(version)
    elif type(version) is not int:
        raise _wrong("schema_version", "an integer", version)
    if version != 1:
        raise BadRecord("bad_value", f"unsupported schema_version {version} (this is version 1)")


def validate_object(obj: Any) -> Record:
    """Validates a decoded JSON value against the contract.

    Args:
        obj: The value ``orjson.loads`` produced.

    Returns:
        The typed record.

    Raises:
        BadRecord: The value breaks the contract; ``reason`` says how.
    """
    if type(obj) is not dict:
        raise BadRecord("not_object", f"a record must be a JSON object, got {type(obj).__name__}")
    get = obj.get
    event_id = get("event_id")
    if type(event_id) is not str or not event_id:
        event_id = _req_str(obj, "event_id")
    if len(event_id) > 128:
        raise BadRecord("bad_value", "field 'event_id' must be at most 128 characters")
    kind = get("kind")
    builder = _BUILDERS.get(kind) if type(kind) is str else None
    if builder is None:
        raise _kind_error(obj)
    version = get("schema_version", 1)
    if type(version) is not int or version != 1:
        _check_version(version)
    text = get("ts")
    if type(text) is not str:
        raise _missing("ts") if "ts" not in obj else _wrong("ts", "an RFC 3339 string", text)
    try:
        ts = parse_ts(text)
    except ValueError as exc:
        raise BadRecord("bad_timestamp", f"field 'ts': {exc}") from None
    rec = builder(obj, event_id, ts)
    _no_separator(rec)
    return rec


def _no_separator(rec: Record) -> None:
    """Rejects a record with U+001F in a text: aupwatch joins texts with it in state keys.

    Last of the checks, so a record with another fault keeps that reason.
    """
    for name in rec.__struct_fields__:
        value = getattr(rec, name)
        texts = value if type(value) is tuple else (value,)
        if any(type(t) is str and SEPARATOR in t for t in texts):
            raise BadRecord(
                "bad_value",
                f"field {name!r} must not contain U+001F (the separator of aupwatch's state keys)",
            )


def decode_line_precise(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record:
    """Decodes one record the precise way (``orjson``, then field by field).

    The same verdict and record as ``decode_line``; it also gives every dead letter its
    reason and message.

    Args:
        raw: The line, without or with its trailing newline.
        max_bytes: Lines longer than this are rejected unread.

    Returns:
        The typed record.

    Raises:
        BadRecord: Not UTF-8, not JSON, too large, or breaks the contract.
    """
    if len(raw) > max_bytes:
        raise BadRecord("too_large", f"record of {len(raw)} bytes exceeds {max_bytes} bytes")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise BadRecord(
                "invalid_utf8", f"not UTF-8: {uexc.reason} at byte {uexc.start}"
            ) from None
        raise BadRecord("invalid_json", f"not JSON: {exc}") from None
    return validate_object(obj)

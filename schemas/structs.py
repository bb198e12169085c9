"""The msgspec path of ``decode_line``: typed Structs, one tagged union on ``kind``.

msgspec checks the types, enums, lengths and ranges of the contract while it parses;
``decode_fast`` then checks what msgspec cannot express (the RFC 3339 rules, address
validity, the conditional ``viewer_seller_id``) and builds the very record
``validate.validate_object`` builds. It vouches for a line only when the precise path
would accept it and build an equal record with its fields in the same order; anything
else returns ``None`` and the precise path decides, so a dead letter's reason and message
never depend on the path. In particular the precise path decides:

- a line msgspec rejects (bad JSON or UTF-8, a wrong type, a value out of range, an
  unknown ``kind``), whatever the reason;
- integers written as floats (``"status":200.0``): msgspec's strict ``int`` refuses them;
- a field beyond the contract: msgspec would skip its value unchecked (invalid UTF-8, a
  number beyond a double), where ``orjson`` rejects the line;
- a key given twice with a wrong value first: msgspec checks every occurrence;
- a bad ``ts``/``expires_at``, a bad address, a ``seller_user`` viewer without a seller.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, Protocol, cast

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import astuple

from aupwatch.schemas.records import ApiCall, Authorization, DataAccess, KeyEvent, Record, build
from aupwatch.schemas.times import TS_PARTS, parse_ts
from aupwatch.schemas.validate import (
    DEFAULT_MAX_RECORD_BYTES,
    decode_line_precise,
    ip_cache,
    ip_ok,
)

_ABSENT: Any = None
"""Default of an optional field: absent is ``None``, while an explicit ``null`` is a wrong
type (the field's type leaves ``None`` out), as in the contract."""
_I64_MAX: Final = 2**63 - 1
"""``orjson`` reads integers beyond 64 bits as floats where msgspec keeps ints; msgspec takes
no bound above int64, so an integer beyond it goes to the precise path."""

Id = Annotated[str, Meta(min_length=1)]
EventId = Annotated[str, Meta(min_length=1, max_length=128)]
Strings = tuple[str, ...]
NonEmptyStrings = Annotated[tuple[str, ...], Meta(min_length=1)]
# A number beyond a double is no JSON for orjson: the upper bounds keep msgspec from
# vouching for infinity or for a huge integer.
Latency = (
    Annotated[int, Meta(ge=0, le=_I64_MAX)] | Annotated[float, Meta(ge=0, le=sys.float_info.max)]
)
Version = Literal[1]


class ApiCallStruct(Struct, tag_field="kind", tag="api_call", forbid_unknown_fields=True, gc=False):
    """``api_call``, fields in ``records.ApiCall`` order; ``ts`` is checked afterwards."""

    event_id: EventId
    ts: str
    region: Literal["NA", "EU", "FE"]
    developer_id: Id
    app_id: Id
    key_id: Id
    seller_id: Id
    operation: Id
    status: Annotated[int, Meta(ge=100, le=599)]
    source_ip: Id
    resource_ids: Strings = ()
    user_agent: str = _ABSENT
    latency_ms: Latency = _ABSENT
    schema_version: Version = 1


class AuthorizationStruct(
    Struct, tag_field="kind", tag="authorization", forbid_unknown_fields=True, gc=False
):
    """``authorization``, fields in ``records.Authorization`` order."""

    event_id: EventId
    ts: str
    app_id: Id
    seller_id: Id
    action: Literal["grant", "revoke"]
    roles: Strings = ()
    expires_at: str = _ABSENT
    developer_id: str = _ABSENT
    schema_version: Version = 1


class DataAccessStruct(
    Struct, tag_field="kind", tag="data_access", forbid_unknown_fields=True, gc=False
):
    """``data_access``, fields in ``records.DataAccess`` order."""

    event_id: EventId
    ts: str
    app_id: Id
    resource_ids: NonEmptyStrings
    viewer_type: Literal["seller_user", "internal_user", "external"]
    viewer_id: Id
    viewer_seller_id: str = _ABSENT
    channel: str = _ABSENT
    schema_version: Version = 1


class KeyEventStruct(
    Struct, tag_field="kind", tag="key_event", forbid_unknown_fields=True, gc=False
):
    """``key_event``, fields in ``records.KeyEvent`` order."""

    event_id: EventId
    ts: str
    key_id: Id
    developer_id: Id
    action: Literal["created", "rotated", "revoked", "deleted"]
    app_id: str = _ABSENT
    schema_version: Version = 1


RecordStruct = ApiCallStruct | AuthorizationStruct | DataAccessStruct | KeyEventStruct
_decode = msgspec.json.Decoder(RecordStruct).decode
_MSGSPEC_ERRORS: Final = (msgspec.MsgspecError, RecursionError)
_new = object.__new__
_setattr = object.__setattr__
_hour, _mmss, _tail = TS_PARTS
_ip_known = ip_cache.get
Fallback = Callable[[bytes, int], Record | None]


class _Decoder(Protocol):
    def __call__(self, raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record | None: ...


def _ts(text: str) -> int | None:
    """``parse_ts(text)``, or None for a text it rejects."""
    try:
        return parse_ts(text)
    except ValueError:
        return None


def _authorization(struct: Any) -> Record | None:
    (event_id, text, app_id, seller_id, action, roles, expires_text, developer_id,
     _) = astuple(struct)  # fmt: skip
    ts = _ts(text)
    expires_at = None if expires_text is None else _ts(expires_text)
    if ts is None or (expires_at is None and expires_text is not None):
        return None
    return build(
        Authorization,
        {
            "event_id": event_id,
            "ts": ts,
            "app_id": app_id,
            "seller_id": seller_id,
            "action": action,
            "roles": roles,
            "expires_at": expires_at,
            "developer_id": developer_id,
            "kind": "authorization",
        },
    )


def _data_access(struct: Any) -> Record | None:
    (event_id, text, app_id, resource_ids, viewer_type, viewer_id, viewer_seller_id, channel,
     _) = astuple(struct)  # fmt: skip
    ts = _ts(text)
    if ts is None or (viewer_type == "seller_user" and not viewer_seller_id):
        return None
    return build(
        DataAccess,
        {
            "event_id": event_id,
            "ts": ts,
            "app_id": app_id,
            "resource_ids": resource_ids,
            "viewer_type": viewer_type,
            "viewer_id": viewer_id,
            "viewer_seller_id": viewer_seller_id,
            "channel": channel,
            "kind": "data_access",
        },
    )


def _key_event(struct: Any) -> Record | None:
    event_id, text, key_id, developer_id, action, app_id, _ = astuple(struct)
    ts = _ts(text)
    if ts is None:
        return None
    return build(
        KeyEvent,
        {
            "event_id": event_id,
            "ts": ts,
            "key_id": key_id,
            "developer_id": developer_id,
            "action": action,
            "app_id": app_id,
            "kind": "key_event",
        },
    )


_FINISH: Final[dict[type, Callable[[Any], Record | None]]] = {
    AuthorizationStruct: _authorization,
    DataAccessStruct: _data_access,
    KeyEventStruct: _key_event,
}


def _decoder(fallback: Fallback) -> _Decoder:
    """A msgspec decoder that hands every line it cannot vouch for to ``fallback``.

    One body serves ``decode_line`` and ``decode_fast``: the hot path (most records are
    calls) runs in a single frame, as each extra call costs about as much as a lookup.
    """

    def decode(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record | None:
        if len(raw) > max_bytes:
            return fallback(raw, max_bytes)
        try:
            struct = _decode(raw)
        except _MSGSPEC_ERRORS:
            return fallback(raw, max_bytes)
        if type(struct) is not ApiCallStruct:
            rec = _FINISH[type(struct)](struct)
            return fallback(raw, max_bytes) if rec is None else rec
        (event_id, text, region, developer_id, app_id, key_id, seller_id, operation, status,
         source_ip, resource_ids, user_agent, latency_ms, _) = astuple(struct)  # fmt: skip
        if _ip_known(source_ip) is not True and not ip_ok(source_ip):
            return fallback(raw, max_bytes)
        # parse_ts's hot path, inline (see times.TS_PARTS)
        hour, mmss, tail = _hour(text[:13]), _mmss(text[13:19]), _tail(text[19:])
        if hour is not None and mmss is not None and tail is not None:
            ts = hour + mmss + tail
        else:
            try:
                ts = parse_ts(text)
            except ValueError:
                return fallback(raw, max_bytes)
        # built around its __dict__, in ApiCall's field order, as records.build does
        rec = _new(ApiCall)
        _setattr(
            rec,
            "__dict__",
            {
                "event_id": event_id,
                "ts": ts,
                "region": region,
                "developer_id": developer_id,
                "app_id": app_id,
                "key_id": key_id,
                "seller_id": seller_id,
                "operation": operation,
                "status": status,
                "source_ip": source_ip,
                "resource_ids": resource_ids,
                "user_agent": user_agent,
                "latency_ms": latency_ms,
                "kind": "api_call",
            },
        )
        return rec

    return decode


def _vouch_none(raw: bytes, max_bytes: int) -> None:
    return None


class LineDecoder(Protocol):
    """What ``decode_line`` is: a callable of a line and an optional size limit."""

    def __call__(self, raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record:
        """Decodes one line."""
        ...


_decode_fast = _decoder(_vouch_none)
# the closure itself, not a wrapper: a wrapper's call would cost a tenth of the fast path
decode_line = cast(LineDecoder, _decoder(decode_line_precise))
"""Decodes one JSON Lines record: msgspec first, the precise path for the rest.

Args:
    raw: The line, without or with its trailing newline.
    max_bytes: Lines longer than this are rejected unread.

Returns:
    The typed record.

Raises:
    BadRecord: Not UTF-8, not JSON, too large, or breaks the contract.
"""


def decode_fast(raw: bytes) -> Record | None:
    """Decodes one line with msgspec, if it can vouch for the result.

    Args:
        raw: One JSON Lines record, without or with its trailing newline.

    Returns:
        The record ``validate.validate_object(orjson.loads(raw))`` returns, or ``None``:
        the line is bad, or good in a way this path leaves to the precise one.
    """
    return _decode_fast(raw)

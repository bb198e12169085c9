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
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import asdict, astuple

from aupwatch.schemas.records import ApiCall, Authorization, DataAccess, KeyEvent, Record, build
from aupwatch.schemas.times import parse_ts
from aupwatch.schemas.validate import ip_cache, ip_ok

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


def decode_fast(raw: bytes) -> Record | None:
    """Decodes one line with msgspec, if it can vouch for the result.

    Args:
        raw: One JSON Lines record, without or with its trailing newline.

    Returns:
        The record ``validate.validate_object(orjson.loads(raw))`` returns, or ``None``:
        the line is bad, or good in a way this path leaves to the precise one.
    """
    try:
        struct = _decode(raw)
    except _MSGSPEC_ERRORS:
        return None
    if type(struct) is not ApiCallStruct:
        return _FINISH[type(struct)](struct)
    # The hot path (most records are calls): the fields are unpacked from one tuple and
    # the record is built around its __dict__, in ApiCall's field order, as ``build`` does.
    (event_id, text, region, developer_id, app_id, key_id, seller_id, operation, status,
     source_ip, resource_ids, user_agent, latency_ms, _) = astuple(struct)  # fmt: skip
    if ip_cache.get(source_ip) is not True and not ip_ok(source_ip):
        return None
    try:
        ts = parse_ts(text)
    except ValueError:
        return None
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


def _fields(struct: RecordStruct) -> dict[str, Any] | None:
    """The fields of a record in its dataclass order but ``kind``; None: a bad ``ts``."""
    fields = asdict(struct)
    try:
        fields["ts"] = parse_ts(fields["ts"])
    except ValueError:
        return None
    # the record has no schema_version field
    del fields["schema_version"]
    return fields


def _authorization(struct: RecordStruct) -> Record | None:
    fields = _fields(struct)
    if fields is None:
        return None
    expires = fields["expires_at"]
    if expires is not None:
        try:
            fields["expires_at"] = parse_ts(expires)
        except ValueError:
            return None
    fields["kind"] = "authorization"
    return build(Authorization, fields)


def _data_access(struct: RecordStruct) -> Record | None:
    fields = _fields(struct)
    if fields is None:
        return None
    if fields["viewer_type"] == "seller_user" and not fields["viewer_seller_id"]:
        return None
    fields["kind"] = "data_access"
    return build(DataAccess, fields)


def _key_event(struct: RecordStruct) -> Record | None:
    fields = _fields(struct)
    if fields is None:
        return None
    fields["kind"] = "key_event"
    return build(KeyEvent, fields)


_FINISH: Final[dict[type[RecordStruct], Callable[[RecordStruct], Record | None]]] = {
    AuthorizationStruct: _authorization,
    DataAccessStruct: _data_access,
    KeyEventStruct: _key_event,
}

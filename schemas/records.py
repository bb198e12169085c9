"""Typed records of the API-access log contract, version 1.

Times are integer microseconds since the Unix epoch (UTC), as ``schemas.times`` parses
and formats them.

The records are frozen msgspec Structs, and also what msgspec decodes a line into
(``schemas.structs``): their field types carry the contract's checks (types, enums,
lengths, ranges, no explicit ``null``), so a good line becomes its record in one C call.
Some field types differ between what msgspec reads and what a record holds, so the
annotations below say one thing to msgspec and another to type checkers:

- ``ts`` and ``expires_at`` are RFC 3339 text in the line; the decoder stores their
  microseconds (``msgspec.structs.force_setattr``) before handing the record out;
- an optional field is absent (``None``) or of its type: an explicit ``null`` is a wrong
  type in the contract, so msgspec reads the bare type, while the record holds ``None``;
- an enum is a ``Literal`` to msgspec and a ``str`` to type checkers, as the precise path
  (``schemas.validate``) checks it at run time.

``kind`` is the union's tag, a class attribute, not a field. ``schema_version`` is a field
(always 1 in a record) so that a line carrying it stays on the msgspec path.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, ClassVar, Final, Literal

from msgspec import Meta, Struct

# The codec lives in ``times``; these names stay importable from here for existing callers.
from aupwatch.schemas.times import format_ts as format_ts
from aupwatch.schemas.times import parse_ts as parse_ts

KINDS: Final = ("api_call", "authorization", "data_access", "key_event")
KIND_RANK: Final = {"key_event": 0, "authorization": 1, "api_call": 2, "data_access": 3}
REGIONS: Final = ("NA", "EU", "FE")
VIEWER_TYPES: Final = ("seller_user", "internal_user", "external")
AUTH_ACTIONS: Final = ("grant", "revoke")
KEY_ACTIONS: Final = ("created", "rotated", "revoked", "deleted")

_I64_MAX: Final = 2**63 - 1
"""``orjson`` reads integers beyond 64 bits as floats where msgspec keeps ints; msgspec takes
no bound above int64, so an integer beyond it goes to the precise path."""

Id = Annotated[str, Meta(min_length=1)]
EventId = Annotated[str, Meta(min_length=1, max_length=128)]
Strings = tuple[str, ...]
NonEmptyStrings = Annotated[tuple[str, ...], Meta(min_length=1)]
Status = Annotated[int, Meta(ge=100, le=599)]
Version = Literal[1]

if TYPE_CHECKING:  # what a record holds
    Micros = int
    MaybeMicros = int | None
    MaybeStr = str | None
    MaybeNumber = float | None
    Region = str
    ViewerType = str
    AuthAction = str
    KeyAction = str
else:  # what msgspec reads from a line
    Micros = str
    MaybeMicros = str
    MaybeStr = str
    # A number beyond a double is no JSON for orjson: the upper bounds keep msgspec from
    # vouching for infinity or for a huge integer.
    MaybeNumber = (
        Annotated[int, Meta(ge=0, le=_I64_MAX)]
        | Annotated[float, Meta(ge=0, le=sys.float_info.max)]
    )
    Region = Literal["NA", "EU", "FE"]
    ViewerType = Literal["seller_user", "internal_user", "external"]
    AuthAction = Literal["grant", "revoke"]
    KeyAction = Literal["created", "rotated", "revoked", "deleted"]


class ApiCall(
    Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag_field="kind", tag="api_call"
):
    """An application called the marketplace API on behalf of a seller."""

    kind: ClassVar[str] = "api_call"
    event_id: EventId
    ts: Micros
    region: Region
    developer_id: Id
    app_id: Id
    key_id: Id
    seller_id: Id
    operation: Id
    status: Status
    source_ip: Id
    resource_ids: Strings = ()
    user_agent: MaybeStr = None
    latency_ms: MaybeNumber = None
    schema_version: Version = 1


class Authorization(
    Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag_field="kind", tag="authorization"
):
    """A seller granted or revoked an application's authorization."""

    kind: ClassVar[str] = "authorization"
    event_id: EventId
    ts: Micros
    app_id: Id
    seller_id: Id
    action: AuthAction
    roles: Strings = ()
    expires_at: MaybeMicros = None
    developer_id: MaybeStr = None
    schema_version: Version = 1


class DataAccess(
    Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag_field="kind", tag="data_access"
):
    """The application disclosed seller data to someone."""

    kind: ClassVar[str] = "data_access"
    event_id: EventId
    ts: Micros
    app_id: Id
    resource_ids: NonEmptyStrings
    viewer_type: ViewerType
    viewer_id: Id
    viewer_seller_id: MaybeStr = None
    channel: MaybeStr = None
    schema_version: Version = 1


class KeyEvent(
    Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag_field="kind", tag="key_event"
):
    """An access key's life-cycle event."""

    kind: ClassVar[str] = "key_event"
    event_id: EventId
    ts: Micros
    key_id: Id
    developer_id: Id
    action: KeyAction
    app_id: MaybeStr = None
    schema_version: Version = 1


Record = ApiCall | Authorization | DataAccess | KeyEvent

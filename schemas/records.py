"""Typed records of the API-access log contract, version 1.

Times are integer microseconds since the Unix epoch (UTC), as ``schemas.times`` parses
and formats them.

The records are frozen dataclasses without ``__slots__`` so that ``build`` can hand a new
instance all its fields in one dict: the generated frozen ``__init__`` pays one
``object.__setattr__`` per field, several times the cost of decoding the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

# The codec lives in ``times``; these names stay importable from here for existing callers.
from aupwatch.schemas.times import format_ts as format_ts
from aupwatch.schemas.times import parse_ts as parse_ts

KINDS: Final = ("api_call", "authorization", "data_access", "key_event")
KIND_RANK: Final = {"key_event": 0, "authorization": 1, "api_call": 2, "data_access": 3}
REGIONS: Final = ("NA", "EU", "FE")
VIEWER_TYPES: Final = ("seller_user", "internal_user", "external")
AUTH_ACTIONS: Final = ("grant", "revoke")
KEY_ACTIONS: Final = ("created", "rotated", "revoked", "deleted")


@dataclass(frozen=True)
class ApiCall:
    """An application called the marketplace API on behalf of a seller."""

    event_id: str
    ts: int
    region: str
    developer_id: str
    app_id: str
    key_id: str
    seller_id: str
    operation: str
    status: int
    source_ip: str
    resource_ids: tuple[str, ...] = ()
    user_agent: str | None = None
    latency_ms: float | None = None
    kind: Literal["api_call"] = "api_call"


@dataclass(frozen=True)
class Authorization:
    """A seller granted or revoked an application's authorization."""

    event_id: str
    ts: int
    app_id: str
    seller_id: str
    action: str
    roles: tuple[str, ...] = ()
    expires_at: int | None = None
    developer_id: str | None = None
    kind: Literal["authorization"] = "authorization"


@dataclass(frozen=True)
class DataAccess:
    """The application disclosed seller data to someone."""

    event_id: str
    ts: int
    app_id: str
    resource_ids: tuple[str, ...]
    viewer_type: str
    viewer_id: str
    viewer_seller_id: str | None = None
    channel: str | None = None
    kind: Literal["data_access"] = "data_access"


@dataclass(frozen=True)
class KeyEvent:
    """An access key's life-cycle event."""

    event_id: str
    ts: int
    key_id: str
    developer_id: str
    action: str
    app_id: str | None = None
    kind: Literal["key_event"] = "key_event"


Record = ApiCall | Authorization | DataAccess | KeyEvent
R = TypeVar("R", ApiCall, Authorization, DataAccess, KeyEvent)

_new = object.__new__
_setattr = object.__setattr__


def build(cls: type[R], fields: dict[str, Any]) -> R:
    """Makes a record from all its fields (``kind`` included) without ``__init__``.

    Args:
        cls: The record class.
        fields: Every field of ``cls`` by name, already validated.

    Returns:
        The record, equal to ``cls(**fields)``.
    """
    rec = _new(cls)
    _setattr(rec, "__dict__", fields)
    return rec

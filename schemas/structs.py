"""The msgspec path of ``decode_line``: the records' own Structs, one tagged union on ``kind``.

msgspec checks the types, enums, lengths and ranges of the contract while it parses the
line into its record (``schemas.records``); the decoder then checks what msgspec cannot
express (the RFC 3339 rules, address validity, the conditional ``viewer_seller_id``) and
stores the times' microseconds in place of their text. It vouches for a line only when
the precise path would accept it and build an equal record; anything else returns
``None`` and the precise path decides, so a dead letter's reason and message never depend
on the path. In particular the precise path decides:

- a line msgspec rejects (bad JSON or UTF-8, a wrong type, a value out of range, an
  unknown ``kind``), whatever the reason;
- integers written as floats (``"status":200.0``): msgspec's strict ``int`` refuses them;
- a field beyond the contract: msgspec would skip its value unchecked (invalid UTF-8, a
  number beyond a double), where ``orjson`` rejects the line;
- a key given twice with a wrong value first: msgspec checks every occurrence;
- a bad ``ts``/``expires_at``, a bad address, a ``seller_user`` viewer without a seller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol, cast

import msgspec
from msgspec.structs import force_setattr

from aupwatch.schemas.records import (
    ApiCall,
    Authorization,
    DataAccess,
    Record,
)
from aupwatch.schemas.times import TS_PARTS, parse_ts
from aupwatch.schemas.validate import (
    DEFAULT_MAX_RECORD_BYTES,
    decode_line_precise,
    ip_cache,
    ip_ok,
)

_decode = msgspec.json.Decoder(Record).decode
_MSGSPEC_ERRORS: Final = (msgspec.MsgspecError, RecursionError)
_hour, _mmss, _tail = cast("tuple[Any, Any, Any]", TS_PARTS)
"""parse_ts's hot path (``times.TS_PARTS``): ``_hour(text[:13]) + _mmss(text[13:19]) +
_tail(text[19:])`` is the time, or a TypeError (``None`` in the sum) sends it to parse_ts."""
# the slices as constants: Python 3.11 builds a slice object for each ``text[:13]``
_H, _MS, _T = slice(None, 13), slice(13, 19), slice(19, None)
_ip_known = ip_cache.get
_CONTROL_ESCAPE = b"\\u001"  # \u0010-\u001f, either case: U+001F among them (see validate)
_BACKSLASH = ord("\\")
Fallback = Callable[[bytes, int], Record | None]


class _Decoder(Protocol):
    def __call__(self, raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record | None: ...


def _ts(text: Any) -> int | None:
    """``parse_ts(text)``, or None for a text it rejects."""
    try:
        return parse_ts(text)
    except ValueError:
        return None


def _with_times(rec: Any) -> bool:
    """Stores the times of a fresh record other than a call, if it can vouch for it.

    Returns:
        False when the precise path must decide the line.
    """
    text: Any = rec.ts  # the line's text until replaced
    try:  # parse_ts's hot path, inline (see _hour)
        force_setattr(rec, "ts", _hour(text[_H]) + _mmss(text[_MS]) + _tail(text[_T]))
    except TypeError:
        ts = _ts(text)
        if ts is None:
            return False
        force_setattr(rec, "ts", ts)
    if type(rec) is Authorization:
        text = rec.expires_at
        if text is not None:
            expires_at = _ts(text)
            if expires_at is None:
                return False
            force_setattr(rec, "expires_at", expires_at)
    elif type(rec) is DataAccess:
        return rec.viewer_type != "seller_user" or bool(rec.viewer_seller_id)
    return True


def _decoder(fallback: Fallback) -> _Decoder:
    """A msgspec decoder that hands every line it cannot vouch for to ``fallback``.

    One body serves ``decode_line`` and ``decode_fast``: the hot path (most records are
    calls) runs in a single frame, as each extra call costs about as much as a lookup.
    """

    def decode(raw: bytes, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record | None:
        # U+001F can only come escaped (JSON has no raw control characters in a string):
        # the precise path decides a line with any such escape (a backslash is rare, and an
        # int's ``in`` is one memchr: a fraction of looking for the escape itself)
        if len(raw) > max_bytes or (_BACKSLASH in raw and _CONTROL_ESCAPE in raw):
            return fallback(raw, max_bytes)
        try:
            rec = _decode(raw)
        except _MSGSPEC_ERRORS:
            return fallback(raw, max_bytes)
        if type(rec) is not ApiCall:
            return rec if _with_times(rec) else fallback(raw, max_bytes)
        source_ip = rec.source_ip
        if _ip_known(source_ip) is not True and not ip_ok(source_ip):
            return fallback(raw, max_bytes)
        text: Any = rec.ts  # the line's text until replaced
        try:  # parse_ts's hot path, inline (see _hour)
            force_setattr(rec, "ts", _hour(text[_H]) + _mmss(text[_MS]) + _tail(text[_T]))
        except TypeError:
            try:
                force_setattr(rec, "ts", parse_ts(text))
            except ValueError:
                return fallback(raw, max_bytes)
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

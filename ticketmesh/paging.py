"""AIP-158 paging: page sizes, and signed page tokens read back into each listing's typed position."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, get_type_hints

from ticketmesh.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MIN_KEY_BYTES = 32
MAC_BYTES = hashlib.sha256().digest_size
# Ids in positions are ids this API made; anything longer was not.
MAX_ID_LENGTH = 128
# Positions that are integers are Postgres bigints.
MAX_INT = 2**63 - 1

NOT_OURS = "is not a page token given out for this query"
UNREADABLE = "holds a position this listing cannot read"

P = TypeVar("P")


def page_size(requested: int) -> int:
    """0 means the default; larger than the maximum is coerced down (AIP-158)."""
    if requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def parse_int(value: object) -> int:
    # JSON's true is a Python int, and not a position.
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise ValueError("not an integer from 0 to 2**63-1")
    return value


def parse_id(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH or "\0" in value:
        raise ValueError(f"not an id of 1 to {MAX_ID_LENGTH} characters without NUL")
    value.encode()  # JSON can spell a lone surrogate, which Postgres cannot take: UnicodeEncodeError
    return value


def parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not an ISO 8601 string")
    parsed = datetime.fromisoformat(value)  # only years 1..9999
    if parsed.tzinfo is None:
        raise ValueError("a time without an offset")
    return parsed.astimezone(UTC)  # OverflowError when the offset carries it past year 1 or 9999


# A position field's type -> (to JSON, from JSON). A listing's position is a dataclass of these.
CODECS: dict[type, tuple[Callable[[Any], object], Callable[[object], Any]]] = {
    int: (int, parse_int),
    str: (str, parse_id),
    datetime: (lambda time: time.astimezone(UTC).isoformat(), parse_time),
}


_FIELDS: dict[type, dict[str, type]] = {}


def _position_fields(position: type) -> dict[str, type]:
    """The dataclass's field names and types, checked once per listing."""
    if position not in _FIELDS:
        if not is_dataclass(position):
            raise TypeError(f"{position.__name__} is not a dataclass")
        hints = get_type_hints(position)
        types = {f.name: hints[f.name] for f in fields(position)}
        unknown = [name for name, kind in types.items() if kind not in CODECS]
        if unknown:
            raise TypeError(f"{position.__name__}.{unknown[0]} is not one of {[t.__name__ for t in CODECS]}")
        _FIELDS[position] = types
    return _FIELDS[position]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(token: str) -> bytes | None:
    """The token's bytes, or None unless it is exactly how _b64 spells them (one spelling per token)."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == token else None


class PageTokens:
    """Makes and reads the page tokens of a service's listings, signed with the service's key.

    A token is base64url(HMAC-SHA256 || position as JSON). The MAC also covers the listing (its
    position class's name) and the request's filters, which the token does not carry: a token
    only continues the query it came from, and stays short. Each listing declares its position as
    a dataclass of int, str (an id) and datetime fields, named for that listing alone, and gets one
    back.
    """

    def __init__(self, key: bytes):
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a page token key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def encode(self, position: object, filters: Mapping[str, str]) -> str:
        kinds = _position_fields(type(position))
        values = {name: CODECS[kind][0](getattr(position, name)) for name, kind in kinds.items()}
        payload = json.dumps(values, separators=(",", ":")).encode()
        return _b64(self._mac(type(position), filters, payload) + payload)

    def decode(self, token: str, position: type[P], filters: Mapping[str, str]) -> P | None:
        """The position `token` continues after, None for the first page; INVALID_ARGUMENT on
        `page_token` for a token this service did not give out for this query and listing."""
        if not token:
            return None
        kinds = _position_fields(position)
        raw = _unb64(token)
        if raw is None or len(raw) <= MAC_BYTES:
            raise InvalidArgument([("page_token", NOT_OURS)])
        mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(position, filters, payload)):
            raise InvalidArgument([("page_token", NOT_OURS)])
        # Signed, so made with our key; still read strictly: a leaked key must not reach SQL.
        try:
            values = json.loads(payload)
            if not isinstance(values, dict) or values.keys() != kinds.keys():
                raise ValueError("not the listing's fields")
            typed = {name: CODECS[kind][1](values[name]) for name, kind in kinds.items()}
        except (ValueError, OverflowError, RecursionError):
            raise InvalidArgument([("page_token", UNREADABLE)]) from None
        return position(**typed)

    def _mac(self, position: type, filters: Mapping[str, str], payload: bytes) -> bytes:
        # ASCII-only JSON has no raw NUL, so the separator keeps the context and payload apart.
        context = json.dumps([position.__name__, sorted(filters.items())]).encode()
        return hmac.new(self._key, context + b"\0" + payload, hashlib.sha256).digest()

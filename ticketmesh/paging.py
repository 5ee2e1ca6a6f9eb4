"""AIP-158 paging: page sizes and opaque page tokens shared by every List method."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ticketmesh.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """0 means the default; larger than the maximum is coerced down (AIP-158)."""
    if requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_token(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def decode_token(token: str, *, expect: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Reads a token made by encode_token; a token from other filters or garbage is INVALID_ARGUMENT."""
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument([("page_token", "is not a token this API gave out")]) from None
    if not isinstance(position, dict):
        raise InvalidArgument([("page_token", "is not a token this API gave out")])
    for key, value in (expect or {}).items():
        if position.get(key) != value:
            raise InvalidArgument([("page_token", "was given out for a different query")])
    return position

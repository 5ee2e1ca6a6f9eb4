"""AIP-155 request ids: where the key comes from, what makes two requests "the same", and how a
replayed answer is marked."""

from __future__ import annotations

import hashlib
from typing import Any

import grpc
from google.protobuf.message import Message

from ticketmesh import context, metrics
from ticketmesh.errors import FailedPrecondition, InvalidArgument

HEADER = "idempotency-key"
REPLAYED = "idempotent-replayed"
_MAX_LEN = 128


def request_key(request_id: str, ctx: grpc.aio.ServicerContext) -> str:
    """The call's idempotency key: the request_id field or the Idempotency-Key header ("" if none).

    Both given and different is a client bug, answered INVALID_ARGUMENT.
    """
    header = str(dict(ctx.invocation_metadata() or ()).get(HEADER, "")).strip()
    if header and request_id and header != request_id:
        raise InvalidArgument([("request_id", "differs from the Idempotency-Key header")])
    key = request_id or header
    if len(key) > _MAX_LEN:
        raise InvalidArgument([("request_id", f"must be at most {_MAX_LEN} characters")])
    return key


def fingerprint(request: Message, *ignored_fields: str) -> str:
    """A stable digest of what the request asks for, leaving out the key itself."""
    copy = type(request)()
    copy.CopyFrom(request)
    for name in ("request_id", *ignored_fields):
        if name in copy.DESCRIPTOR.fields_by_name:
            copy.ClearField(name)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


def reused(key: Any) -> FailedPrecondition:
    """The error for a key that was used before with a different request."""
    return FailedPrecondition(
        "this request id was used before with a different request",
        reason="IDEMPOTENCY_KEY_REUSED",
        metadata={"request_id": str(key)},
    )


async def mark_replayed(ctx: grpc.aio.ServicerContext) -> None:
    """Tells the client (a header over REST) that this answer is a stored one, and counts it."""
    metrics.IDEMPOTENT_REPLAYS.labels(*context.method.get()).inc()
    await ctx.send_initial_metadata(((REPLAYED, "true"),))

"""Calls to other services, always through Envoy's mesh listener: the caller's request id and
remaining deadline travel with the call, and an error comes back as the same typed ServiceError."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import grpc

from ticketmesh import context, errors

_BY_CODE: dict[grpc.StatusCode, type[errors.ServiceError]] = {
    cls.code: cls
    for cls in (
        errors.InvalidArgument,
        errors.NotFound,
        errors.AlreadyExists,
        errors.Aborted,
        errors.FailedPrecondition,
        errors.Unavailable,
        errors.DeadlineExceeded,
    )
}
# How long a mesh call may take when the caller's own call has no deadline.
DEFAULT_TIMEOUT = 10.0
# What Envoy says when it sent nothing upstream: the cluster has no host it may use (the payments
# breaker is open), or no connection could be made. Any other reset may come after the callee acted.
_NEVER_SENT = ("no healthy upstream", "reset reason: connection failure", "remote connection failure")
# Codes with which one of our services refuses a call before doing anything (with its ErrorInfo).
_REFUSED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}


class _Propagate(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        metadata = list(details.metadata or ())
        rid = context.request_id.get()
        if rid:
            metadata.append(("x-request-id", rid))
        timeout = details.timeout if details.timeout is not None else context.time_left(DEFAULT_TIMEOUT)
        if timeout <= 0:
            raise errors.DeadlineExceeded("the deadline passed before the call to another service")
        new = grpc.aio.ClientCallDetails(
            details.method, timeout, metadata, details.credentials, details.wait_for_ready
        )
        return await continuation(new, request)


async def open_channel(stack: AsyncExitStack, address: str) -> grpc.aio.Channel:
    """A channel to the mesh listener, closed when the process leaves."""
    channel = grpc.aio.insecure_channel(address, interceptors=[_Propagate()])
    stack.push_async_callback(channel.close)
    return channel


def service_error(err: grpc.aio.AioRpcError) -> errors.ServiceError:
    """The typed error behind a failed mesh call, keeping its reason and metadata."""
    info = errors.error_info(err)
    reason, metadata = (info.reason, dict(info.metadata)) if info is not None else ("", {})
    cls = _BY_CODE.get(err.code())
    if cls is None or cls is errors.InvalidArgument:
        # The peer rejected what we sent, or failed: our caller did nothing wrong.
        return errors.Internal(f"{err.code().name}: {err.details()}")
    return cls(err.details() or err.code().name, reason=reason or None, metadata=metadata)


def surely_not_done(err: grpc.aio.AioRpcError, *, not_done_reasons: tuple[str, ...] = ()) -> bool:
    """Whether a failed mesh call certainly changed nothing at the callee. A lost reply (a timeout,
    a reset after the request went out, an answer gRPC dropped, an INTERNAL) is an unknown outcome,
    not a failure: only Envoy's "never sent", a refusal from the callee itself, or a reason the
    callee documents as "nothing written" (`not_done_reasons`) are definite."""
    details = err.details() or ""
    if err.code() == grpc.StatusCode.UNAVAILABLE and any(words in details for words in _NEVER_SENT):
        return True
    info = errors.error_info(err)
    if info is None or info.domain != errors.DOMAIN:
        return False  # not an answer from one of our services
    return err.code() in _REFUSED or info.reason in not_done_reasons

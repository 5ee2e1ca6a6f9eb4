"""One server interceptor for every service: binds the log context, checks the deadline, validates
the request against its protovalidate rules, maps errors to status + details, and records metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
import protovalidate
import psycopg
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_status import rpc_status
from loguru import logger
from psycopg_pool import PoolTimeout

from ticketmesh import context, metrics
from ticketmesh.errors import DeadlineExceeded, Internal, InvalidArgument, ServiceError, Unavailable

_validator = protovalidate.Validator()


def _field_path(violation: protovalidate.Violation) -> str:
    # protovalidate answers with protobuf-py messages; a subscript is a Oneof(field, value) or None.
    parts: list[str] = []
    path: Any = violation.proto.field
    for element in path.elements if path is not None else ():
        subscript = element.subscript
        parts.append(element.field_name + (f"[{subscript.value}]" if subscript is not None else ""))
    return ".".join(parts)


# google.protobuf.Timestamp's documented range, 0001-01-01 to 9999-12-31: what datetime can hold.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def _unstorable(value: Any, path: str) -> list[tuple[str, str]]:
    """Violations for what no service can store, at any depth of a request: a string with a NUL
    (Postgres text cannot hold one) and a timestamp outside Timestamp's range (no datetime can)."""
    if isinstance(value, str):
        return [(path, "must not contain NUL characters")] if "\x00" in value else []
    if isinstance(value, Timestamp):
        valid = _MIN_SECONDS <= value.seconds <= _MAX_SECONDS and 0 <= value.nanos <= 999_999_999
        return [] if valid else [(path, "must be a valid timestamp between the years 1 and 9999")]
    if isinstance(value, Message):
        prefix = f"{path}." if path else ""
        return [p for field, v in value.ListFields() for p in _unstorable(v, prefix + field.name)]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _unstorable(k, path) + _unstorable(v, f"{path}[{k}]")]
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [p for i, v in enumerate(value) for p in _unstorable(v, f"{path}[{i}]")]
    return []


def validate(request: Any) -> None:
    """Raises InvalidArgument naming every field that breaks the message's rules, or holds a value
    no service can store (which would otherwise fail deep in a handler as an internal error)."""
    violations = [
        (_field_path(v) or "request", v.proto.message) for v in _validator.collect_violations(request)
    ]
    violations += _unstorable(request, "")
    if violations:
        raise InvalidArgument(violations)


class _Undecodable:
    """Stands in for a request whose bytes are not a valid message, so that the call is answered
    INVALID_ARGUMENT by the interceptor; a deserializer that raises makes grpc answer UNKNOWN."""

    def __init__(self, error: DecodeError):
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError as exc:
            return _Undecodable(exc)

    return deserialize


def _as_service_error(exc: BaseException) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, psycopg.errors.QueryCanceled) and context.time_left(1.0) < 0.1:
        return DeadlineExceeded("the deadline passed while the database was working")
    if isinstance(exc, psycopg.OperationalError | PoolTimeout):
        logger.warning("database unavailable: {}", exc)
        return Unavailable("the database is unavailable, try again", reason="DATABASE_UNAVAILABLE")
    logger.opt(exception=exc).error("unexpected error")
    return Internal("internal error")


async def _abort(ctx: grpc.aio.ServicerContext, err: ServiceError) -> None:
    status = rpc_status.to_status(err.to_status())
    await ctx.abort(status.code, status.details, (*status.trailing_metadata, *err.headers()))


class _Call:
    """What one intercepted call needs to know about itself."""

    def __init__(self, method: str, kind: str, ctx: grpc.aio.ServicerContext):
        _, self.service, self.method = method.split("/")
        self.kind = kind
        self.ctx = ctx
        self.code = grpc.StatusCode.OK
        self.start = time.perf_counter()
        metadata = dict(ctx.invocation_metadata() or ())
        context.request_id.set(str(metadata.get("x-request-id", "")))
        context.method.set((self.service, self.method))
        remaining = ctx.time_remaining()
        context.deadline.set(None if remaining is None else time.monotonic() + remaining)
        metrics.GRPC_STARTED.labels(kind, self.service, self.method).inc()

    def check(self, request: Any) -> None:
        remaining = self.ctx.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the deadline passed before the call started")
        if isinstance(request, _Undecodable):
            raise InvalidArgument([("request", f"is not a valid message: {request.error}")])
        validate(request)

    async def fail(self, exc: BaseException) -> None:
        err = _as_service_error(exc)
        self.code = err.code
        await _abort(self.ctx, err)

    def finish(self) -> None:
        metrics.GRPC_HANDLED.labels(self.kind, self.service, self.method, self.code.name).inc()
        metrics.GRPC_HANDLING_SECONDS.labels(self.kind, self.service, self.method).observe(
            time.perf_counter() - self.start
        )


@contextlib.asynccontextmanager
async def _handling(call: _Call) -> AsyncIterator[None]:
    """Around one call: its log context, its outcome code, errors mapped to status, metrics."""
    with logger.contextualize(method=call.method, request_id=context.request_id.get()):
        try:
            yield
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            call.code = call.ctx.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as exc:
            await call.fail(exc)
        finally:
            call.finish()


def _wrap_unary(method: str, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def behavior(request: Any, ctx: grpc.aio.ServicerContext) -> Any:
        call = _Call(method, "unary", ctx)
        async with _handling(call):
            call.check(request)
            return await inner(request, ctx)

    return behavior


def _wrap_stream(method: str, inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def behavior(request: Any, ctx: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _Call(method, "server_stream", ctx)
        async with _handling(call):
            call.check(request)
            async for item in inner(request, ctx):
                yield item

    return behavior


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every unary and server-streaming handler; health and reflection pass through."""

    _PASS_THROUGH = ("/grpc.health.", "/grpc.reflection.")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(self._PASS_THROUGH):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(method, handler.unary_unary),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, handler.unary_stream),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

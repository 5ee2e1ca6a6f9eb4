"""A lossy link for fault tests: a gRPC proxy between Envoy and one service process. It forwards
every call as raw bytes, metadata, status and trailers included; armed for a method, it still lets
the callee act and waits for its answer, then loses that answer (late, dropped or internal), which
is the commonest fault of a mesh: the work was done and the caller never heard."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

# How an armed link loses an answer: held past the caller's deadline (the caller sees
# DEADLINE_EXCEEDED), dropped as gRPC drops an answer whose metadata passes its 8 KB limit
# (RESOURCE_EXHAUSTED, no details), or replaced by INTERNAL (no details).
LOSSES = ("late", "dropped", "internal")
# A late answer is held this long past the caller's deadline, so the deadline fires first.
LATE_MARGIN_SECONDS = 0.5
# ... or this long when the call has no deadline (every call through Envoy has one).
LATE_WITHOUT_DEADLINE_SECONDS = 30.0
# The streaming methods the mesh carries (watches, reflection); every other method is unary.
STREAMING = frozenset(
    {
        "/ticketing.inventory.v1.InventoryService/WatchAvailability",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
)
# Headers each gRPC hop sets for itself; the deadline travels as the onward call's timeout.
_HOP_HEADERS = frozenset(
    {"user-agent", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "content-type", "te", "host"}
)


@dataclass
class _Armed:
    loss: str
    left: int | None  # None: until disarmed


class Arming:
    """Which methods lose their answers, and what was lost; shared by every link of a service
    (Envoy picks the replica) and safe to use from the test's thread and the links' threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, _Armed] = {}
        self._lost: Counter[tuple[str, str]] = Counter()
        self._answered: Counter[str] = Counter()

    def arm(self, method: str, loss: str, count: int | None = None) -> None:
        """Loses the answers of the next `count` calls to `method` (full name), or of every call
        until disarmed."""
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        with self._lock:
            self._armed[method] = _Armed(loss, count)

    def disarm(self, method: str | None = None) -> None:
        """Stops losing answers of `method`, or of every method."""
        with self._lock:
            if method is None:
                self._armed.clear()
            else:
                self._armed.pop(method, None)

    def reset(self) -> None:
        """Disarms every method and sets the counters back to zero (between tests)."""
        with self._lock:
            self._armed.clear()
            self._lost.clear()
            self._answered.clear()

    @contextmanager
    def armed(self, method: str, loss: str, count: int | None = None) -> Iterator[None]:
        """arm() for the block, disarm() after it whatever happens."""
        self.arm(method, loss, count)
        try:
            yield
        finally:
            self.disarm(method)

    def lost(self, method: str, loss: str | None = None) -> int:
        """Answers of `method` lost so far (in one way, or in any)."""
        with self._lock:
            return sum(n for (m, how), n in self._lost.items() if m == method and loss in (None, how))

    def answered(self, method: str) -> int:
        """Answers the callees gave to `method` so far, lost or passed on."""
        with self._lock:
            return self._answered[method]

    def _take(self, method: str) -> str | None:
        """The loss awaiting this call, decided when it arrives (and used up by it)."""
        with self._lock:
            armed = self._armed.get(method)
            if armed is None:
                return None
            if armed.left is not None:
                armed.left -= 1
                if armed.left == 0:
                    del self._armed[method]
            return armed.loss

    def _record(self, method: str, loss: str | None) -> None:
        with self._lock:
            self._answered[method] += 1
            if loss is not None:
                self._lost[method, loss] += 1


class LossyLink:
    """Listens on 127.0.0.1 (`port`, 0 for a free one) and forwards to `upstream` ("host:port").
    It serves on a thread and event loop of its own, so it keeps forwarding while the caller's
    thread is blocked (a stack starting inside a fixture, health checks included)."""

    def __init__(self, upstream: str, arming: Arming | None = None, port: int = 0, name: str = "") -> None:
        self.upstream = upstream
        self.arming = arming or Arming()
        self.port = port
        self.name = name or upstream
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> LossyLink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Returns once the link listens; `port` is then the port it listens on."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"lossy-link {self.name}", daemon=True
        )
        self._thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops listening (calls under way get a second to finish), then ends the thread."""
        if self._loop is None or self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._loop = self._thread = None

    async def _serve(self) -> int:
        self._channel = grpc.aio.insecure_channel(self.upstream)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((_Forward(self),))
        port = self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()
        return port

    async def _close(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=1)
        if self._channel is not None:
            await self._channel.close()

    # -- one call, on the link's loop ------------------------------------------------------------

    async def unary(self, method: str, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        loss = self.arming._take(method)
        assert self._channel is not None
        call = self._channel.unary_unary(method)(
            request, metadata=_onward(context), timeout=context.time_remaining()
        )
        try:
            response = await call
        except grpc.aio.AioRpcError:
            response = b""  # the callee's error is passed on (or lost) below, like an answer
        except asyncio.CancelledError:
            call.cancel()  # the caller went away: so does the onward call
            raise
        self.arming._record(method, loss)
        if loss is not None:
            await _lose(loss, context)
        initial = tuple(await call.initial_metadata() or ())
        if initial:
            await context.send_initial_metadata(initial)
        trailing = tuple(await call.trailing_metadata() or ())
        code = await call.code()
        if code != grpc.StatusCode.OK:
            # Trailers carry grpc-status-details-bin (google.rpc.Status with ErrorInfo) unchanged.
            await context.abort(code, await call.details() or "", trailing)
        context.set_trailing_metadata(trailing)
        return bytes(response)

    async def stream(
        self, method: str, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> None:
        """Streams pass through untouched: the faults are about unary answers."""
        assert self._channel is not None
        call = self._channel.stream_stream(method)(
            requests, metadata=_onward(context), timeout=context.time_remaining()
        )
        try:
            initial = tuple(await call.initial_metadata() or ())
            if initial:
                await context.send_initial_metadata(initial)
            async for message in call:
                await context.write(message)
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), err.details() or "", tuple(err.trailing_metadata() or ()))
        except asyncio.CancelledError:
            call.cancel()
            raise
        context.set_trailing_metadata(tuple(await call.trailing_metadata() or ()))


class _Forward(grpc.GenericRpcHandler):
    """Every method, with no (de)serializers: requests and answers stay bytes."""

    def __init__(self, link: LossyLink) -> None:
        self.link = link

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method in STREAMING:
            return grpc.stream_stream_rpc_method_handler(_bound(self.link.stream, method))
        return grpc.unary_unary_rpc_method_handler(_bound(self.link.unary, method))


def _bound(handler: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    # A plain coroutine function: grpc.aio runs anything else in a thread pool.
    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await handler(method, request, context)

    return behavior


def _onward(context: grpc.aio.ServicerContext) -> tuple[tuple[str, str | bytes], ...]:
    """The caller's metadata (x-request-id, idempotency headers, ...) without per-hop headers."""
    return tuple(
        (key, value)
        for key, value in context.invocation_metadata() or ()
        if not key.startswith(":") and key not in _HOP_HEADERS
    )


async def _lose(loss: str, context: grpc.aio.ServicerContext) -> None:
    """Answers in place of the callee's answer, which is thrown away."""
    if loss == "late":
        remaining = context.time_remaining()
        await asyncio.sleep(
            (LATE_WITHOUT_DEADLINE_SECONDS if remaining is None else remaining) + LATE_MARGIN_SECONDS
        )
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    elif loss == "dropped":
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "received metadata size exceeds limit")
    else:
        await context.abort(grpc.StatusCode.INTERNAL, "")

"""A call whose deadline has passed is not started, and a mesh call never outlives its caller."""

from __future__ import annotations

import contextvars
import time
from typing import Any

import grpc
import pytest

from ticketing.inventory.v1 import inventory_service_pb2 as inv
from ticketmesh import context, mesh
from ticketmesh.errors import DeadlineExceeded
from ticketmesh.interceptor import _Call


class _Context:
    """The two things the interceptor asks of a servicer context before a call starts."""

    def __init__(self, time_remaining: float | None):
        self._left = time_remaining

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "rid-1"),)

    def time_remaining(self) -> float | None:
        return self._left


def _in_own_context(test: Any) -> Any:
    """Runs a test in a copy of the context: _Call sets the call's context variables."""

    def run() -> None:
        contextvars.copy_context().run(test)

    run.__name__ = test.__name__
    return run


@_in_own_context
def test_a_call_past_its_deadline_is_not_started() -> None:
    call = _Call("/ticketing.inventory.v1.InventoryService/WhoAmI", "unary", _Context(-0.01))  # type: ignore[arg-type]
    with pytest.raises(DeadlineExceeded):
        call.check(inv.WhoAmIRequest())


@_in_own_context
def test_a_call_with_time_left_starts_and_its_deadline_is_known() -> None:
    call = _Call("/ticketing.inventory.v1.InventoryService/WhoAmI", "unary", _Context(2.0))  # type: ignore[arg-type]
    call.check(inv.WhoAmIRequest())
    assert 1.9 < context.time_left(10.0) <= 2.0
    assert context.request_id.get() == "rid-1"


async def test_a_mesh_call_gets_what_its_caller_has_left() -> None:
    seen: dict[str, Any] = {}

    async def continuation(details: grpc.aio.ClientCallDetails, request: Any) -> str:
        seen["timeout"], seen["metadata"] = details.timeout, list(details.metadata or ())
        return "answer"

    details = grpc.aio.ClientCallDetails("/x.Y/Z", None, None, None, None)
    token, rid = context.deadline.set(time.monotonic() + 1.5), context.request_id.set("rid-2")
    try:
        assert await mesh._Propagate().intercept_unary_unary(continuation, details, None) == "answer"
    finally:
        context.deadline.reset(token)
        context.request_id.reset(rid)
    assert 1.4 < seen["timeout"] <= 1.5
    assert ("x-request-id", "rid-2") in seen["metadata"]


async def test_a_mesh_call_is_not_made_after_the_callers_deadline() -> None:
    async def continuation(details: grpc.aio.ClientCallDetails, request: Any) -> str:
        raise AssertionError("the call was made")

    details = grpc.aio.ClientCallDetails("/x.Y/Z", None, None, None, None)
    token = context.deadline.set(time.monotonic() - 0.01)
    try:
        with pytest.raises(DeadlineExceeded):
            await mesh._Propagate().intercept_unary_unary(continuation, details, None)
    finally:
        context.deadline.reset(token)

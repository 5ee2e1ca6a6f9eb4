"""Which consumer failures the broker waits out in place (transient) and which count toward a
message's deliveries and end as a dead letter (poison)."""

from __future__ import annotations

import grpc
import psycopg
import pytest
from google.protobuf.message import DecodeError
from psycopg_pool import PoolTimeout

from ticketmesh.broker import is_transient
from ticketmesh.errors import DeadlineExceeded, FailedPrecondition, Internal, NotFound, Unavailable


def _rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="from the mesh")


@pytest.mark.parametrize(
    "failure",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        PoolTimeout("couldn't get a connection after 0.50 sec"),
        Unavailable("the database is unavailable, try again", reason="DATABASE_UNAVAILABLE"),
        DeadlineExceeded("the deadline passed before the database was asked"),
        _rpc_error(grpc.StatusCode.UNAVAILABLE),
        _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED),
        _rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED),
        _rpc_error(grpc.StatusCode.CANCELLED),
    ],
    ids=repr,
)
def test_an_outage_is_transient(failure: BaseException) -> None:
    assert is_transient(failure)


@pytest.mark.parametrize(
    "failure",
    [
        DecodeError("Error parsing message"),
        ValueError("not an event"),
        KeyError("order"),
        NotFound("reservation r1 not found", reason="RESERVATION_NOT_FOUND"),
        FailedPrecondition("reservation r1 was released", reason="RESERVATION_RELEASED"),
        Internal("internal error"),
        psycopg.errors.UniqueViolation("duplicate key"),
        psycopg.errors.InvalidTextRepresentation("invalid input syntax"),
        _rpc_error(grpc.StatusCode.INVALID_ARGUMENT),
        _rpc_error(grpc.StatusCode.NOT_FOUND),
        _rpc_error(grpc.StatusCode.INTERNAL),
    ],
    ids=repr,
)
def test_anything_else_is_the_messages_fault(failure: BaseException) -> None:
    assert not is_transient(failure)

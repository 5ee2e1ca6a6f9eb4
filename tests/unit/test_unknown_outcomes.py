"""Which failed mesh calls surely changed nothing (the rest are unknown outcomes), and orders' rules
for retrying a payment and owed work."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import status_pb2

from services.orders.domain import charge_key, is_free, owed_retry_delay
from ticketmesh import mesh
from ticketmesh.errors import FailedPrecondition, Internal, NotFound, ServiceError, Unavailable


def _failed(code: grpc.StatusCode, details: str, error: ServiceError | None = None) -> grpc.aio.AioRpcError:
    """A failed call as the client sees it; `error` is what one of our services answered."""
    trailing: tuple[tuple[str, bytes | str], ...] = ()
    if error is not None:
        status = status_pb2.Status(code=code.value[0], message=details)
        status.details.extend(error.details())
        trailing = (("grpc-status-details-bin", status.SerializeToString()),)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details=details)


@pytest.mark.parametrize(
    "err",
    [
        _failed(grpc.StatusCode.UNAVAILABLE, "no healthy upstream"),
        _failed(
            grpc.StatusCode.UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        ),
        _failed(grpc.StatusCode.NOT_FOUND, "charge x not found", NotFound("charge x not found")),
        _failed(
            grpc.StatusCode.FAILED_PRECONDITION,
            "no",
            FailedPrecondition("no", reason="ORDER_ALREADY_CHARGED"),
        ),
    ],
    ids=["breaker open", "connect failure", "refused: not found", "refused: precondition"],
)
def test_definite_failures(err: grpc.aio.AioRpcError) -> None:
    assert mesh.surely_not_done(err)


@pytest.mark.parametrize(
    "err",
    [
        _failed(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        _failed(
            grpc.StatusCode.UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: remote reset",
        ),
        _failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "received metadata size exceeds soft limit"),
        _failed(grpc.StatusCode.INTERNAL, "boom", Internal("boom")),
        _failed(grpc.StatusCode.UNKNOWN, "?"),
        _failed(grpc.StatusCode.CANCELLED, "cancelled"),
        # An UNAVAILABLE from a callee may come after it wrote (the database failed at commit).
        _failed(grpc.StatusCode.UNAVAILABLE, "db", Unavailable("db", reason="DATABASE_UNAVAILABLE")),
        # A refusal shaped answer that no service of ours sent (no ErrorInfo): a proxy's, say.
        _failed(grpc.StatusCode.NOT_FOUND, "not found"),
    ],
    ids=[
        "deadline",
        "reset",
        "metadata dropped",
        "internal",
        "unknown",
        "cancelled",
        "db at commit",
        "no info",
    ],
)
def test_unknown_outcomes(err: grpc.aio.AioRpcError) -> None:
    assert not mesh.surely_not_done(err)


def test_a_callee_may_name_reasons_that_mean_nothing_was_written() -> None:
    err = _failed(grpc.StatusCode.UNAVAILABLE, "down", Unavailable("down", reason="PAYMENTS_UNAVAILABLE"))
    assert not mesh.surely_not_done(err)
    assert mesh.surely_not_done(err, not_done_reasons=("PAYMENTS_UNAVAILABLE",))


def test_each_voided_attempt_gets_a_key_of_its_own() -> None:
    keys = {charge_key("ord_1", "k", attempt) for attempt in range(3)}
    assert len(keys) == 3
    assert charge_key("ord_1", "k", 0) == charge_key("ord_1", "k", 0)
    # Unambiguous whatever the pay key holds: the attempt sits between two fixed separators.
    assert charge_key("ord_1", "1:k", 0) != charge_key("ord_1", "k", 1)


def test_free_means_exactly_zero() -> None:
    assert is_free(0, 0)
    assert not is_free(0, 10_000_000)
    assert not is_free(1, 0)


def test_owed_work_waits_longer_each_time_up_to_a_cap() -> None:
    delays = [owed_retry_delay(n, 0.5, cap_seconds=10) for n in range(1, 8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10, 10]

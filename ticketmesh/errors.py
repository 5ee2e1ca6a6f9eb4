"""Typed errors that domain code raises, and their mapping to gRPC status with rich details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "ticketing"
M = TypeVar("M", bound=Message)


class ServiceError(Exception):
    """An answer that is not a success: a gRPC code, a reason from DESIGN.md, and metadata."""

    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})

    def details(self) -> list[any_pb2.Any]:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata))
        return [info]

    def headers(self) -> list[tuple[str, str]]:
        """Metadata sent with the error, besides its status."""
        return []

    def to_status(self) -> status_pb2.Status:
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=self.details())


class InvalidArgument(ServiceError):
    """Bad input; carries one violation per field (google.rpc.BadRequest)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[tuple[str, str]], message: str | None = None):
        text = message or "; ".join(f"{field}: {why}" for field, why in violations)
        super().__init__(text)
        self.violations = list(violations)

    def details(self) -> list[any_pb2.Any]:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in self.violations
                ]
            )
        )
        return [*super().details(), bad]


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Unavailable(ServiceError):
    """Try again later; `retry_after` (seconds) becomes a google.rpc.RetryInfo and a retry-after
    header, so gRPC and REST clients both know when."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after

    def details(self) -> list[any_pb2.Any]:
        if self.retry_after is None:
            return super().details()
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=self.retry_after)))
        return [*super().details(), retry]

    def headers(self) -> list[tuple[str, str]]:
        return [] if self.retry_after is None else [("retry-after", str(self.retry_after))]


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of a failed call, if the peer sent one."""
    return error_detail(err, error_details_pb2.ErrorInfo)


def error_detail(err: grpc.aio.AioRpcError, kind: type[M]) -> M | None:
    """The detail of type `kind` (ErrorInfo, RetryInfo, BadRequest...) of a failed call, if any."""
    status = rpc_status.from_call(err)
    for detail in status.details if status is not None else ():
        if detail.Is(kind.DESCRIPTOR):
            found = kind()
            detail.Unpack(found)
            return found
    return None


class Internal(ServiceError):
    """Something unexpected; the message never carries the cause, which is logged instead."""


assert code_pb2.OK == 0  # google.rpc.Code and grpc.StatusCode share their numbers.

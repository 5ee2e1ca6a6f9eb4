"""Orders' rules, free of I/O: statuses, what may happen to an order when, and money."""

from __future__ import annotations

import uuid
from enum import StrEnum

from ticketmesh.errors import FailedPrecondition, InvalidArgument


class Status(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAYMENT_IN_PROGRESS = "PAYMENT_IN_PROGRESS"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


def new_order_id() -> str:
    return f"ord_{uuid.uuid4().hex}"


def new_user_id() -> str:
    return f"usr_{uuid.uuid4().hex}"


def check_quantity(quantity: int, maximum: int) -> None:
    if not 1 <= quantity <= maximum:
        raise InvalidArgument([("quantity", f"must be between 1 and {maximum}")])


def charge_key(order_id: str, pay_key: str) -> str:
    """The payment gateway's key for one pay request: same request, same charge."""
    return f"{order_id}:{pay_key}"


def not_payable(order_id: str, status: Status, why: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"order {order_id} cannot be paid: {why}",
        reason="ORDER_NOT_PAYABLE",
        metadata={"status": status.value},
    )

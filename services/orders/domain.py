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


def charge_key(order_id: str, pay_key: str, attempt: int) -> str:
    """The payment gateway's key for one pay request: same request, same charge. The attempt
    counts attempts given up (voided) before: a voided key can never charge, so a retry of the same
    pay request after one needs a key of its own. Order ids hold no ':', so the key is unambiguous."""
    return f"{order_id}:{attempt}:{pay_key}"


# A CreateOrder without a client key is claimed too, under its order id and a method name of its
# own (so no client key can ever name it): the claim is the trace that lets a hold whose answer was
# lost be found and undone.
CREATE_ORDER = "CreateOrder"
CREATE_ORDER_UNKEYED = "CreateOrder/unkeyed"


def is_free(amount_units: int, amount_nanos: int) -> bool:
    """A free order confirms without a charge: the gateway takes no zero amounts."""
    return amount_units == 0 and amount_nanos == 0


class OwedKind(StrEnum):
    """Work a failure or a lost reply left owed, finished by the sweeper."""

    RELEASE_STOCK = "RELEASE_STOCK"
    REFUND_CHARGE = "REFUND_CHARGE"
    CHECK_PAYMENT = "CHECK_PAYMENT"


def owed_retry_delay(attempts: int, base_seconds: float, cap_seconds: float = 300.0) -> float:
    """How long a row of owed work waits after its `attempts`-th failure: doubling, capped."""
    return min(cap_seconds, base_seconds * 2 ** max(0, attempts - 1))


def not_payable(order_id: str, status: Status, why: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"order {order_id} cannot be paid: {why}",
        reason="ORDER_NOT_PAYABLE",
        metadata={"status": status.value},
    )

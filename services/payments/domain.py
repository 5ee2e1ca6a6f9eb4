"""Payments' rules, free of I/O: charge states, the gateway's mode and how a charge's outcome is chosen."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from ticketmesh.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from ticketmesh.values import Money

# What a bank transfer takes to settle when SetMode leaves settle_delay_ms at 0.
DEFAULT_SETTLE_DELAY_MS = 2000
# The simulated bank gives one reason; a real gateway has many.
DECLINE_REASON = "insufficient_funds"
# ListCharges' page size when the caller gives none (the proto caps it at 1000).
DEFAULT_PAGE_SIZE = 100


class Method(StrEnum):
    CARD = "CARD"
    BANK_TRANSFER = "BANK_TRANSFER"


class Status(StrEnum):
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    PENDING = "PENDING"
    REFUNDED = "REFUNDED"
    # A tombstone: the key was given up (VoidCharge) before a charge existed; it never takes money.
    VOIDED = "VOIDED"


@dataclass(frozen=True)
class ChargeRequest:
    """What CreateCharge asks for; the key names it."""

    key: str
    order_id: str
    amount: Money
    method: Method


@dataclass(frozen=True)
class Charge:
    id: str
    key: str
    order_id: str
    amount: Money
    # None on a VOIDED charge: it never asked for money.
    method: Method | None
    status: Status
    decline_reason: str
    create_time: datetime
    update_time: datetime

    def answers(self, request: ChargeRequest) -> bool:
        """Whether this stored charge is the answer to `request` under the same key: the same ask,
        or a void, which answers whatever was asked under its key (its caller gave the key up, so
        the ask never reached the bank and nothing was taken)."""
        if self.status is Status.VOIDED:
            return True
        return (self.order_id, self.amount, self.method) == (request.order_id, request.amount, request.method)


# What a VOIDED charge records: no amount and no method (the void does not know what was asked).
VOID_AMOUNT = Money("", 0, 0)


@dataclass(frozen=True)
class Mode:
    """How the simulated gateway misbehaves; one row shared by every payments process."""

    failure_rate: float = 0.0
    decline_rate: float = 0.0
    latency_ms: int = 0
    settle_delay_ms: int = DEFAULT_SETTLE_DELAY_MS

    def with_defaults(self) -> Mode:
        """settle_delay_ms 0 means the default: what SetMode stores and answers."""
        if self.settle_delay_ms > 0:
            return self
        return Mode(self.failure_rate, self.decline_rate, self.latency_ms, DEFAULT_SETTLE_DELAY_MS)


class RandomSource(Protocol):
    """Where chance comes from: random.Random in production, a scripted source in tests."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class Outcome:
    status: Status
    decline_reason: str = ""


def gateway_fails(mode: Mode, rng: RandomSource) -> bool:
    """Whether this call meets an injected outage (answered UNAVAILABLE, nothing stored)."""
    return rng.random() < mode.failure_rate


def choose_outcome(method: Method, mode: Mode, rng: RandomSource) -> Outcome:
    """The (simulated) bank's answer. A card is approved or declined at once; a bank transfer is
    PENDING until it settles."""
    if method is Method.BANK_TRANSFER:
        return Outcome(Status.PENDING)
    if rng.random() < mode.decline_rate:
        return Outcome(Status.DECLINED, DECLINE_REASON)
    return Outcome(Status.APPROVED)


def settle_delay_ms(method: Method, mode: Mode) -> int | None:
    """How long from creation until a charge settles: a bank transfer's delay comes from the mode
    it was created under; a card has nothing to settle (None)."""
    if method is Method.BANK_TRANSFER:
        return mode.with_defaults().settle_delay_ms
    return None


def new_charge_id() -> str:
    """A fresh charge id, e.g. ch_3f9a1c7b2d4e6f8091a2b3c4."""
    return f"ch_{secrets.token_hex(12)}"


def check_amount(amount: Money) -> None:
    """What protovalidate cannot say about google.type.Money: a currency code, a positive amount."""
    violations = amount.violations("amount", positive=True)
    if violations:
        raise InvalidArgument(violations)


@dataclass(frozen=True)
class ChargePage:
    """One ListCharges page: charges with (update_time, id) above (after, after_id) and
    update_time below `before`, at most `size` of them. Bounds are at the database's microsecond
    precision, rounded so that the answer is exactly what the caller's nanosecond bounds say."""

    after: datetime
    after_id: str
    before: datetime
    size: int


# The first instant a datetime holds: "from the beginning".
_BEGINNING = datetime.min.replace(tzinfo=UTC)
_END = datetime.max.replace(tzinfo=UTC)


def _to_micros(seconds: int, nanos: int) -> tuple[datetime, bool]:
    """A Timestamp (seconds, nanos) as a UTC datetime rounded down to the microsecond, and
    whether anything was rounded off."""
    micros, rest = divmod(nanos, 1000)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros), rest > 0


def _next_micro(value: datetime) -> datetime:
    return _END if value == _END else value + timedelta(microseconds=1)


def charge_page(
    updated_after: tuple[int, int] | None, after_id: str, updated_before: tuple[int, int], page_size: int
) -> ChargePage:
    """The page ListCharges asks for; bounds are Timestamp (seconds, nanos), updated_after None
    when unset. after_id only means something with updated_after, so alone it is refused."""
    if updated_after is None:
        if after_id:
            raise InvalidArgument([("after_id", "must come with updated_after")])
        after, after_id = _BEGINNING, ""
    else:
        after, rounded = _to_micros(*updated_after)
        if rounded:
            # No charge changed at a sub-microsecond instant: "after it" is "from the next
            # microsecond on", which ("" being below every id) is (next microsecond, "").
            after, after_id = _next_micro(after), ""
    before, rounded = _to_micros(*updated_before)
    if rounded:
        before = _next_micro(before)  # a microsecond time is below b exactly when below ceil(b)
    return ChargePage(after, after_id, before, page_size or DEFAULT_PAGE_SIZE)


def check_refundable(charge: Charge) -> None:
    """Only money taken can be given back; a refunded charge is the caller's (repeated) answer."""
    if charge.status not in (Status.APPROVED, Status.REFUNDED):
        raise FailedPrecondition(
            f"charge {charge.id} is {charge.status.value} and cannot be refunded",
            reason="CHARGE_NOT_REFUNDABLE",
            metadata={"charge_id": charge.id, "status": charge.status.value},
        )


def charge_not_found(what: str) -> NotFound:
    return NotFound(f"charge {what} not found", reason="CHARGE_NOT_FOUND")


def gateway_unavailable() -> Unavailable:
    return Unavailable("the payment gateway is unavailable, try again", reason="PAYMENTS_UNAVAILABLE")


def order_already_charged(order_id: str, charge_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"order {order_id} already has a charge",
        reason="ORDER_ALREADY_CHARGED",
        metadata={"charge_id": charge_id},
    )

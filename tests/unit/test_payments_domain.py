"""Payments' pure rules: how a charge's outcome is chosen, with chance scripted."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from services.payments.domain import (
    DECLINE_REASON,
    DEFAULT_SETTLE_DELAY_MS,
    Charge,
    ChargeRequest,
    Method,
    Mode,
    Outcome,
    Status,
    check_amount,
    check_refundable,
    choose_outcome,
    gateway_fails,
    new_charge_id,
)
from ticketmesh.errors import FailedPrecondition, InvalidArgument
from ticketmesh.values import Money


class Scripted:
    """A RandomSource that answers the given draws in order."""

    def __init__(self, *draws: float):
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


EUR_50 = Money("EUR", 50, 0)


def _charge(status: Status) -> Charge:
    now = datetime.now(UTC)
    return Charge("ch_1", "k", "ORD-1", EUR_50, Method.CARD, status, "", now, now)


@pytest.mark.parametrize(
    ("draw", "decline_rate", "expected"),
    [
        (0.0, 0.0, Outcome(Status.APPROVED)),
        (0.99, 1.0, Outcome(Status.DECLINED, DECLINE_REASON)),
        (0.29, 0.3, Outcome(Status.DECLINED, DECLINE_REASON)),
        (0.3, 0.3, Outcome(Status.APPROVED)),
    ],
)
def test_a_card_is_declined_when_the_draw_is_under_the_decline_rate(
    draw: float, decline_rate: float, expected: Outcome
) -> None:
    assert choose_outcome(Method.CARD, Mode(decline_rate=decline_rate), Scripted(draw)) == expected


def test_a_bank_transfer_is_pending_whatever_the_decline_rate() -> None:
    # No draw is made: Scripted() would raise if one were.
    assert choose_outcome(Method.BANK_TRANSFER, Mode(decline_rate=1.0), Scripted()) == Outcome(Status.PENDING)


def test_the_gateway_fails_when_the_draw_is_under_the_failure_rate() -> None:
    assert gateway_fails(Mode(failure_rate=1.0), Scripted(0.999))
    assert gateway_fails(Mode(failure_rate=0.5), Scripted(0.49))
    assert not gateway_fails(Mode(failure_rate=0.5), Scripted(0.5))
    assert not gateway_fails(Mode(), Scripted(0.0))


def test_rates_hold_over_many_draws() -> None:
    rng = random.Random(7)
    mode = Mode(decline_rate=0.25)
    declined = sum(choose_outcome(Method.CARD, mode, rng).status is Status.DECLINED for _ in range(10_000))
    assert 2_200 < declined < 2_800


def test_settle_delay_zero_means_the_default() -> None:
    assert Mode(0.1, 0.2, 3, 0).with_defaults() == Mode(0.1, 0.2, 3, DEFAULT_SETTLE_DELAY_MS)
    assert Mode(settle_delay_ms=5).with_defaults().settle_delay_ms == 5


def test_a_stored_charge_answers_only_the_same_ask() -> None:
    charge = _charge(Status.APPROVED)
    assert charge.answers(ChargeRequest("other-key", "ORD-1", EUR_50, Method.CARD))
    assert not charge.answers(ChargeRequest("k", "ORD-2", EUR_50, Method.CARD))
    assert not charge.answers(ChargeRequest("k", "ORD-1", Money("EUR", 51, 0), Method.CARD))
    assert not charge.answers(ChargeRequest("k", "ORD-1", EUR_50, Method.BANK_TRANSFER))


@pytest.mark.parametrize(
    ("amount", "field"),
    [
        (Money("eur", 1, 0), "amount.currency_code"),
        (Money("EUR", 0, 0), "amount"),
        (Money("EUR", -5, 0), "amount"),
        (Money("EUR", 1, 1_000_000_000), "amount.nanos"),
    ],
)
def test_bad_amounts_name_the_field(amount: Money, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_amount(amount)
    assert err.value.violations[0][0] == field


def test_only_approved_or_refunded_charges_are_refundable() -> None:
    check_refundable(_charge(Status.APPROVED))
    check_refundable(_charge(Status.REFUNDED))
    for status in (Status.DECLINED, Status.PENDING):
        with pytest.raises(FailedPrecondition) as err:
            check_refundable(_charge(status))
        assert err.value.reason == "CHARGE_NOT_REFUNDABLE"


def test_charge_ids_are_unique_and_prefixed() -> None:
    ids = {new_charge_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("ch_") and len(i) <= 64 for i in ids)

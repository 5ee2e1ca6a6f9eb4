"""Payments' pure rules: how a charge's outcome is chosen, with chance scripted."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.payments.domain import (
    DECLINE_REASON,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SETTLE_DELAY_MS,
    VOID_AMOUNT,
    Charge,
    ChargePage,
    ChargeRequest,
    Method,
    Mode,
    Outcome,
    Status,
    charge_page,
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


def test_a_voided_charge_answers_any_ask_under_its_key() -> None:
    now = datetime.now(UTC)
    voided = Charge("ch_1", "k", "ORD-1", VOID_AMOUNT, None, Status.VOIDED, "", now, now)
    assert voided.answers(ChargeRequest("k", "ORD-1", EUR_50, Method.CARD))
    assert voided.answers(ChargeRequest("k", "ORD-1", Money("EUR", 51, 0), Method.BANK_TRANSFER))


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
    for status in (Status.DECLINED, Status.PENDING, Status.VOIDED):
        with pytest.raises(FailedPrecondition) as err:
            check_refundable(_charge(status))
        assert err.value.reason == "CHARGE_NOT_REFUNDABLE"


def test_charge_ids_are_unique_and_prefixed() -> None:
    ids = {new_charge_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("ch_") and len(i) <= 64 for i in ids)


# 2026-01-02T03:04:05.123456Z as Timestamp (seconds, nanos), and as a datetime.
T_SECONDS = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
T = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def test_a_page_from_the_beginning_starts_below_every_charge() -> None:
    page = charge_page(None, "", (T_SECONDS, 123_456_000), 0)
    assert page == ChargePage(datetime.min.replace(tzinfo=UTC), "", T, DEFAULT_PAGE_SIZE)
    assert charge_page(None, "", (T_SECONDS, 123_456_000), 7).size == 7


def test_a_page_after_a_charge_starts_after_its_time_and_id() -> None:
    page = charge_page((T_SECONDS, 123_456_000), "ch_9", (T_SECONDS + 60, 0), 10)
    assert (page.after, page.after_id) == (T, "ch_9")
    assert page.before == T.replace(microsecond=0) + timedelta(seconds=60)


def test_sub_microsecond_bounds_round_so_the_answer_is_exact() -> None:
    # Charges change at whole microseconds: "after T + 1 ns" is "from T + 1 us on", whatever id;
    # "before T + 1 ns" includes T.
    page = charge_page((T_SECONDS, 123_456_001), "ch_9", (T_SECONDS, 123_456_001), 10)
    assert (page.after, page.after_id) == (T + MICRO, "")
    assert page.before == T + MICRO


def test_bounds_at_the_end_of_time_do_not_overflow() -> None:
    last_second = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
    page = charge_page((last_second, 999_999_999), "", (last_second, 999_999_999), 10)
    assert page.after == page.before == datetime.max.replace(tzinfo=UTC)


def test_after_id_without_updated_after_is_refused() -> None:
    with pytest.raises(InvalidArgument) as err:
        charge_page(None, "ch_1", (T_SECONDS, 0), 10)
    assert err.value.violations[0][0] == "after_id"

"""Inventory's pure rules."""

import pytest

from services.inventory.domain import (
    MAX_PRICE_UNITS,
    EventSpec,
    TicketTypeSpec,
    check_event,
    new_event_id,
    sold_out,
)
from ticketmesh.errors import InvalidArgument
from ticketmesh.values import Money


def _spec(*types: TicketTypeSpec) -> EventSpec:
    return EventSpec("EVNT-TEST", "Test", "", None, types)


def test_event_codes_are_unique_and_well_formed() -> None:
    codes = {new_event_id() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(code.startswith("EVNT-") and code.upper() == code for code in codes)


def test_valid_event_passes() -> None:
    check_event(
        _spec(TicketTypeSpec("GA", Money("EUR", 50, 0), 100), TicketTypeSpec("VIP", Money("EUR", 120, 0), 5))
    )


def test_duplicate_ticket_type_names_are_rejected() -> None:
    with pytest.raises(InvalidArgument) as err:
        check_event(
            _spec(TicketTypeSpec("GA", Money("EUR", 1, 0), 1), TicketTypeSpec("GA", Money("EUR", 1, 0), 1))
        )
    assert err.value.violations[0][0] == "event.ticket_types[1].name"


@pytest.mark.parametrize(
    ("price", "field"),
    [
        (Money("eur", 1, 0), "event.ticket_types[0].price.currency_code"),
        (Money("EURO", 1, 0), "event.ticket_types[0].price.currency_code"),
        (Money("ZZZ", 1, 0), "event.ticket_types[0].price.currency_code"),
        (Money("XXX", 1, 0), "event.ticket_types[0].price.currency_code"),
        (Money("EUR", -1, 0), "event.ticket_types[0].price"),
        (Money("EUR", 0, 1), "event.ticket_types[0].price.nanos"),
        (Money("EUR", 1, 1_000_000), "event.ticket_types[0].price.nanos"),
        (Money("JPY", 1, 500_000_000), "event.ticket_types[0].price.nanos"),
        # A total for two of these would overflow Money's int64 units (orders answered INTERNAL).
        (Money("EUR", 2**63 - 1, 990_000_000), "event.ticket_types[0].price"),
        (Money("EUR", MAX_PRICE_UNITS + 1, 0), "event.ticket_types[0].price"),
    ],
)
def test_bad_prices_are_rejected(price: Money, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_event(_spec(TicketTypeSpec("GA", price, 1)))
    assert err.value.violations[0][0] == field


def test_the_dearest_allowed_ticket_can_be_ordered_a_thousand_times() -> None:
    price = Money("EUR", MAX_PRICE_UNITS, 990_000_000)
    check_event(_spec(TicketTypeSpec("GA", price, 1)))
    assert price.times(1000).units < 2**63


def test_a_free_ticket_type_is_an_event() -> None:
    check_event(
        _spec(TicketTypeSpec("FREE", Money("EUR", 0, 0), 100), TicketTypeSpec("VIP", Money("EUR", 5, 0), 5))
    )


@pytest.mark.parametrize(
    "price", [Money("JPY", 1500, 0), Money("BHD", 2, 125_000_000), Money("EUR", 9, 990_000_000)]
)
def test_prices_in_their_currency_minor_unit_pass(price: Money) -> None:
    check_event(_spec(TicketTypeSpec("GA", price, 1)))


def test_mixed_currencies_are_rejected() -> None:
    with pytest.raises(InvalidArgument):
        check_event(
            _spec(TicketTypeSpec("A", Money("EUR", 1, 0), 1), TicketTypeSpec("B", Money("USD", 1, 0), 1))
        )


def test_sold_out_carries_what_is_left() -> None:
    err = sold_out(3, 5)
    assert err.reason == "SOLD_OUT"
    assert err.metadata == {"available": "3"}

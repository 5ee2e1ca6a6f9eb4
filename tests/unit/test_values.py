"""Money arithmetic and checks shared by every service (inventory's prices, payments' amounts)."""

import pytest

from ticketmesh.values import MINOR_UNITS, Money


@pytest.mark.parametrize(
    ("unit", "quantity", "total"),
    [
        (Money("EUR", 50, 500_000_000), 2, Money("EUR", 101, 0)),
        (Money("EUR", 0, 333_333_333), 3, Money("EUR", 0, 999_999_999)),
        (Money("USD", 19, 990_000_000), 10, Money("USD", 199, 900_000_000)),
    ],
)
def test_times_is_exact(unit: Money, quantity: int, total: Money) -> None:
    assert unit.times(quantity) == total


def test_round_trips_through_protobuf() -> None:
    money = Money("EUR", 12, 340_000_000)
    assert Money.from_pb(money.to_pb()) == money


def test_zero_is_a_price_but_not_a_charge() -> None:
    assert Money("EUR", 0, 0).violations("price", positive=False) == []
    assert Money("EUR", 0, 0).violations("amount", positive=True) == [("amount", "must be positive")]


def _fields(money: Money, *, positive: bool = False) -> list[str]:
    return [field for field, _ in money.violations("price", positive=positive)]


@pytest.mark.parametrize(
    "code",
    [
        "ZZZ",  # no such code
        "eur",  # ISO 4217 codes are capitals
        "EURO",
        "",
        "XXX",  # "no currency involved"
        "XTS",  # reserved for testing
        "XAU",  # gold: no minor unit, not money
        "CLF",  # a fund code (Chile's Unidad de Fomento)
        "HRK",  # historic: the kuna, replaced by the euro in 2023
        "DEM",  # historic
    ],
)
def test_only_current_iso_4217_currencies_are_money(code: str) -> None:
    assert _fields(Money(code, 1, 0)) == ["price.currency_code"]


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "BHD", "KWD", "GBP", "CHF", "XOF", "IQD"])
def test_currencies_in_use_are_accepted(code: str) -> None:
    assert Money(code, 1, 0).violations("price", positive=True) == []


@pytest.mark.parametrize(
    ("money", "ok"),
    [
        (Money("EUR", 0, 1), False),  # 0.000000001 EUR
        (Money("EUR", 0, 1_000_000), False),  # 0.001 EUR
        (Money("EUR", 0, 10_000_000), True),  # one cent
        (Money("USD", 19, 990_000_000), True),
        (Money("USD", 19, 995_000_000), False),
        (Money("JPY", 1200, 0), True),
        (Money("JPY", 1200, 500_000_000), False),
        (Money("BHD", 1, 1_000_000), True),  # 1.001 BHD: the dinar has 1,000 fils
        (Money("KWD", 0, 999_000_000), True),
        (Money("BHD", 1, 100_000), False),
        (Money("IQD", 1, 1_000_000), True),  # 3 decimals in ISO 4217 (CLDR shows it with 0)
    ],
)
def test_precision_fits_the_currency_minor_unit(money: Money, ok: bool) -> None:
    assert _fields(money) == ([] if ok else ["price.nanos"])


def test_precision_messages_name_the_currency() -> None:
    [(_, eur)] = Money("EUR", 0, 1_000_000).violations("price", positive=False)
    assert eur == "must be a whole number of cents for EUR (a multiple of 10,000,000 nanos)"
    [(_, jpy)] = Money("JPY", 1, 1).violations("price", positive=False)
    assert "JPY" in jpy and "no minor unit" in jpy


def test_the_minor_units_are_iso_4217s() -> None:
    assert (MINOR_UNITS["EUR"], MINOR_UNITS["USD"], MINOR_UNITS["JPY"]) == (2, 2, 0)
    assert (MINOR_UNITS["BHD"], MINOR_UNITS["KWD"], MINOR_UNITS["IQD"]) == (3, 3, 3)
    assert {"XXX", "XTS", "XAU", "XDR", "BOV", "CLF", "USN", "UYW", "XAD"}.isdisjoint(MINOR_UNITS)


def test_the_old_checks_still_hold() -> None:
    assert _fields(Money("EUR", 1, 1_000_000_000)) == ["price.nanos"]
    assert _fields(Money("EUR", -1, 0)) == ["price"]
    assert _fields(Money("EUR", 0, -10_000_000)) == ["price"]
    # A charge (payments' check_amount calls this with positive=True) gets the same currency rule.
    assert _fields(Money("ZZZ", 5, 0), positive=True) == ["price.currency_code"]
    assert _fields(Money("EUR", 5, 1), positive=True) == ["price.nanos"]
    assert _fields(Money("EUR", 0, 0), positive=True) == ["price"]

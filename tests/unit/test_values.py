"""Money arithmetic and checks shared by every service."""

import pytest

from ticketmesh.values import Money


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

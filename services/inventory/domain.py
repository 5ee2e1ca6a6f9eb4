"""Inventory's rules, free of I/O: strategies, states, event codes and what a valid event is."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ticketmesh.errors import Aborted, InvalidArgument
from ticketmesh.values import Money


class Strategy(StrEnum):
    """How stock is taken (DESIGN.md); all three must be correct under contention."""

    COMPARE_AND_SET = "COMPARE_AND_SET"
    OPTIMISTIC = "OPTIMISTIC"
    PESSIMISTIC = "PESSIMISTIC"


class State(StrEnum):
    HELD = "HELD"
    RELEASED = "RELEASED"
    SOLD = "SOLD"


@dataclass(frozen=True)
class TicketTypeSpec:
    name: str
    price: Money
    capacity: int


@dataclass(frozen=True)
class EventSpec:
    id: str
    display_name: str
    venue: str
    start_time: datetime | None
    ticket_types: tuple[TicketTypeSpec, ...]


@dataclass(frozen=True)
class Event(EventSpec):
    create_time: datetime


@dataclass(frozen=True)
class Stock:
    """One ticket type's counters; available + held + sold = capacity always."""

    ticket_type: str
    capacity: int
    available: int
    held: int
    sold: int


@dataclass(frozen=True)
class Reservation:
    id: str
    event_id: str
    ticket_type: str
    quantity: int
    state: State
    unit_price: Money
    create_time: datetime
    update_time: datetime


def new_event_id() -> str:
    """A fresh event code, e.g. EVNT-3F9A1C7B."""
    return f"EVNT-{secrets.token_hex(4).upper()}"


# The dearest ticket: an order of the most tickets a request may ask for (1,000) at this price
# still fits Money's int64 units, so pricing an order can never overflow.
MAX_PRICE_UNITS = 1_000_000_000


def check_event(spec: EventSpec) -> None:
    """What protovalidate cannot say per field: names unique, prices well formed and in one currency.
    A price may be 0 (a free ticket); Money.violations says what else a price must be."""
    violations: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, tt in enumerate(spec.ticket_types):
        where = f"event.ticket_types[{i}]"
        if tt.name in seen:
            violations.append((f"{where}.name", f"duplicate ticket type name {tt.name!r}"))
        seen.add(tt.name)
        violations.extend(tt.price.violations(f"{where}.price", positive=False))
        if tt.price.units > MAX_PRICE_UNITS:
            violations.append((f"{where}.price", f"must be at most {MAX_PRICE_UNITS:,} units"))
    currencies = {tt.price.currency for tt in spec.ticket_types}
    if len(currencies) > 1:
        violations.append(("event.ticket_types", "all prices must use one currency"))
    if violations:
        raise InvalidArgument(violations)


def sold_out(available: int, requested: int) -> Aborted:
    return Aborted(
        f"not enough tickets: {available} left, {requested} asked",
        reason="SOLD_OUT",
        metadata={"available": str(max(available, 0))},
    )

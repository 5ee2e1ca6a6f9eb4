"""Value types every service shares, with their protobuf forms: money and timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

NANOS = 1_000_000_000


@dataclass(frozen=True)
class Money:
    """An exact amount in a currency: google.type.Money's three fields."""

    currency: str
    units: int
    nanos: int

    @classmethod
    def from_pb(cls, pb: money_pb2.Money) -> Money:
        return cls(pb.currency_code, pb.units, pb.nanos)

    def to_pb(self) -> money_pb2.Money:
        return money_pb2.Money(currency_code=self.currency, units=self.units, nanos=self.nanos)

    def times(self, quantity: int) -> Money:
        """This amount `quantity` times, exact (integer nanos), normalised as Money wants."""
        nanos = (self.units * NANOS + self.nanos) * quantity
        units, rest = divmod(abs(nanos), NANOS)
        sign = -1 if nanos < 0 else 1
        return Money(self.currency, sign * units, sign * rest)

    def violations(self, where: str, *, positive: bool) -> list[tuple[str, str]]:
        """What protovalidate cannot say about Money: a real currency code, nanos in range, and
        not negative (or, with `positive`, above zero). Field paths start at `where`."""
        out = []
        if len(self.currency) != 3 or not self.currency.isascii() or not self.currency.isupper():
            out.append((f"{where}.currency_code", "must be a 3-letter ISO 4217 code such as EUR"))
        if not -999_999_999 <= self.nanos <= 999_999_999:
            out.append((f"{where}.nanos", "must be within +-999,999,999"))
        elif self.units < 0 or self.nanos < 0:
            out.append((where, "must be positive" if positive else "must not be negative"))
        elif positive and self.units == 0 and self.nanos == 0:
            out.append((where, "must be positive"))
        return out


def timestamp(value: datetime | None) -> Timestamp | None:
    """A datetime as a protobuf Timestamp (None stays None: the field is left unset)."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def now_timestamp() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts

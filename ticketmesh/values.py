"""Value types every service shares, with their protobuf forms: money and timestamps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import iso4217
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

NANOS = 1_000_000_000

# Currencies come from the `iso4217` package, which ships the ISO 4217 maintenance agency's own
# published table (List One, the codes in use today) and gives each code's minor unit as the
# standard states it (JPY 0, EUR 2, BHD 3). Babel's get_currency_precision was not enough: it gives
# CLDR's display digits, which differ from ISO 4217 for some currencies (IQD 0 instead of 3, RSD 0
# instead of 2) and it answers 2 for a code that does not exist; pycountry knows the codes but not
# their minor units; py-moneyed's table dates from its last release (2022).
#
# Accepted: every List One code with a minor unit, except fund codes (the table marks them IsFund:
# BOV, CHE, CHW, CLF, COU, MXV, USN, UYI) and two units of account the table does not mark, UYW
# (Uruguay's pension index) and XAD (the Arab Monetary Fund's accounting dinar), none of which a
# ticket is paid in. Codes without a minor unit ("N.A.": XXX no currency, XTS testing, XAU and the
# other metals, XBA-XBD bond units, XDR, XSU, XUA) are refused, and so is every historic code
# (List Three: DEM, HRK, SLL, ...), as the package does not list them.
_UNITS_OF_ACCOUNT = frozenset({"UYW", "XAD"})


def _payable_currencies() -> Mapping[str, int]:
    funds = {
        entry.findtext("Ccy")
        for entry in iso4217.raw_xml.iter("CcyNtry")
        if entry.find("CcyNm[@IsFund='true']") is not None
    }
    return MappingProxyType(
        {
            currency.code: currency.exponent
            for currency in iso4217.Currency
            if currency.exponent is not None
            and currency.code not in funds
            and currency.code not in _UNITS_OF_ACCOUNT
        }
    )


#: Code -> ISO 4217 minor unit (decimal places) of every currency an amount may be in.
MINOR_UNITS: Mapping[str, int] = _payable_currencies()

_MINOR_UNIT_NAMES = {2: "cents", 3: "thousandths"}


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
        """What protovalidate cannot say about Money: a currency one can pay in (see MINOR_UNITS),
        nanos in range and no finer than the currency's minor unit, and not negative (or, with
        `positive`, above zero). Field paths start at `where`."""
        out = []
        minor_unit = MINOR_UNITS.get(self.currency)
        if minor_unit is None:
            out.append((f"{where}.currency_code", _currency_problem(self.currency)))
        if not -999_999_999 <= self.nanos <= 999_999_999:
            out.append((f"{where}.nanos", "must be within +-999,999,999"))
        else:
            if minor_unit is not None and self.nanos % 10 ** (9 - minor_unit):
                out.append((f"{where}.nanos", _precision_problem(self.currency, minor_unit)))
            if self.units < 0 or self.nanos < 0:
                out.append((where, "must be positive" if positive else "must not be negative"))
            elif positive and self.units == 0 and self.nanos == 0:
                out.append((where, "must be positive"))
        return out


def _currency_problem(code: str) -> str:
    if code in iso4217.raw_table:
        # A real ISO 4217 code that is not money (XXX, XTS, a metal) or is a fund: safe to echo.
        return (
            f"{code} is an ISO 4217 code but not money (fund, metal, test and no-currency codes are refused)"
        )
    return "must be an ISO 4217 currency code in current use, in capitals, such as EUR"


def _precision_problem(code: str, minor_unit: int) -> str:
    if minor_unit == 0:
        return f"must be 0 for {code}, which has no minor unit"
    step = 10 ** (9 - minor_unit)
    unit = _MINOR_UNIT_NAMES.get(minor_unit, f"1/{10**minor_unit:,}")
    return f"must be a whole number of {unit} for {code} (a multiple of {step:,} nanos)"


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

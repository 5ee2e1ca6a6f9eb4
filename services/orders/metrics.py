"""Orders' own metrics. Labels are bounded: event and ticket type, outcomes; never order or user ids."""

from __future__ import annotations

from prometheus_client import Counter

# What each call to the payment gateway came to. "breaker_open" is Envoy refusing the call because
# the gateway is ejected (the breaker is open): the call never reached payments.
PAYMENT_CALLS = Counter(
    "orders_payment_calls_total",
    "Calls from orders to the payment gateway, by outcome.",
    ["outcome"],
)

# Unpaid orders the sweeper expired (their hold ended; the stock goes back).
ORDERS_EXPIRED = Counter(
    "orders_expired_total", "Unpaid orders expired by the sweeper.", ["event_id", "ticket_type"]
)

# Owed work (releases, refunds, payment checks) that failed too often and was parked for people.
OWED_PARKED = Counter("orders_owed_work_parked_total", "Owed work parked after its retries.", ["kind"])

# What the books' reconciliation found: approved charges refunded because no confirmed order is
# theirs ("orphan_charge"), and confirmed orders whose charge is not approved ("unpaid_confirmed").
BOOKS_FINDINGS = Counter(
    "orders_books_findings_total", "Mismatches the books' reconciliation found.", ["kind"]
)

# Every series exists from the start (at 0), so dashboards and alerts see "none" rather than "no data".
for _kind in ("RELEASE_STOCK", "REFUND_CHARGE", "CHECK_PAYMENT"):
    OWED_PARKED.labels(_kind)
for _kind in ("orphan_charge", "unpaid_confirmed"):
    BOOKS_FINDINGS.labels(_kind)

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

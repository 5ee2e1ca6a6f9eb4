"""Payments' business metrics. Labels are bounded: method and result, never ids or amounts."""

from prometheus_client import Counter

# result: approved, declined, pending (bank transfer), unavailable (injected failure), replayed
# (same key again), voided (the key was given up by VoidCharge: answered VOIDED, nothing taken),
# already_charged (the order has a live charge under another key).
PAYMENTS = Counter(
    "payments_total", "CreateCharge answers, by payment method and result.", ["method", "result"]
)

# Bank transfers the settler approved (each with one ChargeSettled in the outbox).
SETTLED = Counter("payments_settled_total", "Bank-transfer charges settled (PENDING -> APPROVED).")

# VoidCharge answers. result: voided (no charge had the key: a VOIDED tombstone now holds it),
# found (the key already had a charge, returned as it is).
VOIDS = Counter("payments_voids_total", "VoidCharge answers, by result.", ["result"])

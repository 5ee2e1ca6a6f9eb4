"""Inventory's business metrics. Labels are bounded: event and ticket type, never ids of people."""

from prometheus_client import Counter

TICKETS_RESERVED = Counter(
    "tickets_reserved_total", "Tickets put on hold.", ["event_id", "ticket_type", "strategy"]
)
RESERVATION_CONFLICTS = Counter(
    "reservation_conflicts_total",
    "Reservations that met contention: sold out, or an optimistic attempt that lost its race.",
    ["event_id", "ticket_type", "kind"],
)

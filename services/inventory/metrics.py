"""Inventory's business metrics. Labels are bounded: event and ticket type, never ids of people."""

from prometheus_client import Counter

TICKETS_RESERVED = Counter(
    "tickets_reserved_total", "Tickets put on hold.", ["event_id", "ticket_type", "strategy"]
)
# Held tickets that became sold (HELD -> SOLD, once per reservation) when their order was confirmed.
TICKETS_SOLD = Counter("tickets_sold_total", "Tickets sold.", ["event_id", "ticket_type"])
# Held or sold tickets given back (a cancelled or expired order).
TICKETS_RELEASED = Counter(
    "tickets_released_total", "Tickets given back to stock.", ["event_id", "ticket_type"]
)
# kind: sold_out (not enough stock: the compare-and-set found too little), version_conflict (an
# OPTIMISTIC attempt lost its race to another writer and was retried).
RESERVATION_CONFLICTS = Counter(
    "reservation_conflicts_total",
    "Reservations that met contention: sold out, or an optimistic attempt that lost its race.",
    ["event_id", "ticket_type", "kind"],
)

"""Notify's business metrics. Labels are bounded: the notification's kind, never ids."""

from prometheus_client import Counter, Histogram

SENT = Counter(
    "notifications_sent_total", "Notifications sent (stored once per order event), by kind.", ["kind"]
)
# From the order event's occur_time to its notification: how far the outbox, NATS and this
# consumer together trail the order.
LAG_SECONDS = Histogram(
    "notification_lag_seconds",
    "Seconds from an order event to its notification, by kind (ORDER_CONFIRMED: confirmed -> notified).",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
# Dead letters are counted for every consumer by ticketmesh.broker (jetstream_dead_letters_total).

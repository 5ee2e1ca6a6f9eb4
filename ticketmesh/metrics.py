"""Prometheus metrics shared by every service: gRPC server metrics named as go-grpc-prometheus
names them, idempotent replays, the outbox backlog and JetStream redeliveries and dead letters.
Labels are bounded (service, method, consumer), never ids of orders or people."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

GRPC_STARTED = Counter(
    "grpc_server_started_total",
    "RPCs started on the server.",
    ["grpc_type", "grpc_service", "grpc_method"],
)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
)
# Calls here take from well under a millisecond (a cached read) to seconds (a slow gateway): the
# buckets are dense from 0.5 ms to 100 ms, where p95/p99 of a healthy mesh lie.
GRPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC, from receipt to the last response.",
    ["grpc_type", "grpc_service", "grpc_method"],
    buckets=(
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.0075,
        0.01,
        0.025,
        0.05,
        0.075,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
    ),
)

IDEMPOTENT_REPLAYS = Counter(
    "idempotent_replays_total",
    "Stored answers given again to a repeated request id (AIP-155), by gRPC service and method.",
    ["grpc_service", "grpc_method"],
)

# Sampled by each outbox relay; `outbox` is the publishing service (orders, payments).
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet published to JetStream.", ["outbox"])
OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox row (0 when none).", ["outbox"]
)
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows published to JetStream.", ["outbox"])

# `consumer` is the durable consumer's name (inventory, notify, orders).
JETSTREAM_REDELIVERIES = Counter(
    "jetstream_redeliveries_total",
    "Messages delivered again (an earlier delivery was not acked), by durable consumer.",
    ["consumer"],
)
JETSTREAM_DEAD_LETTERS = Counter(
    "jetstream_dead_letters_total",
    "Messages a consumer gave up on after its last delivery and kept as dead letters.",
    ["consumer"],
)


def serve_metrics(host: str, port: int) -> int:
    """Serves /metrics on its own HTTP port, in a thread; returns the bound port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_address[1])

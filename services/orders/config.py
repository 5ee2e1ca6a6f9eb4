"""Orders' settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from ticketmesh.config import ServiceSettings, env_float, env_int, env_str


@dataclass(frozen=True)
class OrdersSettings:
    base: ServiceSettings
    # Envoy's mesh listener: every call to inventory and payments goes through it.
    mesh_address: str
    # How long an unpaid order holds its tickets.
    hold_seconds: float
    # The most tickets one order may take.
    max_quantity: int
    # How often the sweeper looks for expired holds and owed work.
    sweep_seconds: float
    # Idempotency keys are kept at least this long (24 h by default, as promised to clients).
    keep_keys_seconds: float
    # How long a bank transfer may take: an order still waiting at the end of its term expires,
    # its stock returns, and a settlement that arrives later is refunded.
    payment_term_seconds: float
    # Owed work (releases, refunds, payment checks) that fails waits this long, doubling each time
    # (capped at 5 minutes), and is parked for people after this many attempts.
    owed_retry_seconds: float
    owed_max_attempts: int
    # The books' reconciliation: how often it reads payments' charges, and how long after a
    # charge's last change (what is still settling is left to the purchase's own rules).
    books_interval_seconds: float
    books_grace_seconds: float

    @classmethod
    def from_env(cls) -> OrdersSettings:
        return cls(
            base=ServiceSettings.from_env("orders"),
            mesh_address=env_str("MESH_ADDRESS"),
            hold_seconds=env_float("HOLD_TTL_SECONDS", 600.0, minimum=1.0),
            max_quantity=env_int("MAX_TICKETS_PER_ORDER", 10, minimum=1),
            sweep_seconds=env_float("SWEEP_INTERVAL_SECONDS", 1.0, minimum=0.05),
            keep_keys_seconds=env_float("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600.0, minimum=60.0),
            payment_term_seconds=env_float("PAYMENT_TERM_SECONDS", 3 * 24 * 3600.0, minimum=1.0),
            owed_retry_seconds=env_float("OWED_RETRY_SECONDS", 1.0, minimum=0.05),
            owed_max_attempts=env_int("OWED_MAX_ATTEMPTS", 12, minimum=1),
            books_interval_seconds=env_float("BOOKS_INTERVAL_SECONDS", 10.0, minimum=0.1),
            books_grace_seconds=env_float("BOOKS_GRACE_SECONDS", 30.0, minimum=0.0),
        )

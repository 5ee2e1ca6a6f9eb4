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
    # Idempotency keys are kept at least this long (24 h by default, as DESIGN.md promises).
    keep_keys_seconds: float

    @classmethod
    def from_env(cls) -> OrdersSettings:
        return cls(
            base=ServiceSettings.from_env("orders"),
            mesh_address=env_str("MESH_ADDRESS"),
            hold_seconds=env_float("HOLD_TTL_SECONDS", 600.0, minimum=1.0),
            max_quantity=env_int("MAX_TICKETS_PER_ORDER", 10, minimum=1),
            sweep_seconds=env_float("SWEEP_INTERVAL_SECONDS", 1.0, minimum=0.05),
            keep_keys_seconds=env_float("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600.0, minimum=60.0),
        )

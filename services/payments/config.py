"""Payments' settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from ticketmesh.config import ServiceSettings, env_float


@dataclass(frozen=True)
class PaymentsSettings:
    base: ServiceSettings
    # How long a process trusts its copy of the mode row; SetMode elsewhere reaches it within this.
    mode_cache_seconds: float
    # How often the settler looks for bank transfers due to settle.
    settle_interval_seconds: float

    @classmethod
    def from_env(cls) -> PaymentsSettings:
        return cls(
            base=ServiceSettings.from_env("payments"),
            mode_cache_seconds=env_float("MODE_CACHE_SECONDS", 0.5),
            settle_interval_seconds=env_float("SETTLE_INTERVAL_SECONDS", 0.2, minimum=0.01),
        )

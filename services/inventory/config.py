"""Inventory's settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from ticketmesh.config import ServiceSettings, env_float


@dataclass(frozen=True)
class InventorySettings:
    base: ServiceSettings
    # How often a watched event's availability is re-read; changes reach watchers within this.
    watch_interval_seconds: float

    @classmethod
    def from_env(cls) -> InventorySettings:
        return cls(
            base=ServiceSettings.from_env("inventory"),
            watch_interval_seconds=env_float("WATCH_INTERVAL_SECONDS", 0.25, minimum=0.01),
        )

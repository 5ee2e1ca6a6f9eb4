"""Notify's settings, from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from ticketmesh.config import ServiceSettings, env_int


@dataclass(frozen=True)
class NotifySettings:
    base: ServiceSettings
    # Deliveries of a message that cannot be handled before it becomes a dead letter. Only poison
    # counts (a payload that does not decode, a row the schema refuses): while the database is away
    # the consumer waits instead, so a valid event is never dead-lettered by an outage.
    max_deliver: int

    @classmethod
    def from_env(cls) -> NotifySettings:
        return cls(
            base=ServiceSettings.from_env("notify"),
            max_deliver=env_int("NOTIFY_MAX_DELIVER", 3, minimum=1),
        )

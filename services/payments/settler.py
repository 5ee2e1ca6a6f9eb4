"""Settles bank transfers: approves the charges whose delay has passed and hands their
ChargeSettled events to the outbox relay."""

from __future__ import annotations

import asyncio

from loguru import logger

from services.payments import metrics
from services.payments.store import PaymentsStore
from ticketmesh.outbox import OutboxRelay


class Settler:
    """Polls for due charges; any number of processes may run one (rows are claimed with SKIP
    LOCKED). Run it under ticketmesh.server.run_forever: a failed round (database away) raises and
    is restarted, and what it had not committed is simply still due."""

    def __init__(
        self,
        store: PaymentsStore,
        relay: OutboxRelay,
        *,
        interval_seconds: float = 0.2,
        batch_size: int = 100,
    ):
        self.store = store
        self.relay = relay
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size

    async def run(self) -> None:
        while True:
            settled = await self.settle_once()
            if settled < self.batch_size:
                await asyncio.sleep(self.interval_seconds)

    async def settle_once(self) -> int:
        """One batch, committed; returns how many charges settled."""
        settled = await self.store.settle_due(self.batch_size)
        if settled:
            self.relay.wake()
            metrics.SETTLED.inc(len(settled))
        for charge, request_id in settled:
            logger.bind(request_id=request_id, order_id=charge.order_id, charge_id=charge.id).info(
                "bank transfer settled"
            )
        return len(settled)

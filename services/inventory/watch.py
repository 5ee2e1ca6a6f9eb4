"""Availability watching: one poller per watched event per replica, fanned out to every watcher.

Polling the counters is how a change made on any replica reaches watchers on every replica,
without adding work to the purchase path (a NOTIFY per purchase would serialize commits)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from services.inventory.domain import Stock

Snapshot = tuple[list[Stock], datetime]


class AvailabilityHub:
    """Shares one read loop per event among all its watchers in this process."""

    def __init__(self, read: Callable[[str], Awaitable[Snapshot]], interval: float):
        self._read = read
        self._interval = interval
        self._watchers: dict[str, set[asyncio.Queue[Snapshot]]] = {}
        self._pollers: dict[str, asyncio.Task[None]] = {}

    async def watch(self, event_id: str) -> AsyncIterator[Snapshot]:
        """Yields the current snapshot at once, then each changed one, until the caller stops."""
        first = await self._read(event_id)  # NOT_FOUND surfaces here, before streaming starts
        yield first
        queue: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=1)
        self._watchers.setdefault(event_id, set()).add(queue)
        if event_id not in self._pollers:
            self._pollers[event_id] = asyncio.create_task(self._poll(event_id, first[0]))
        try:
            while True:
                yield await queue.get()
        finally:
            watchers = self._watchers[event_id]
            watchers.discard(queue)
            if not watchers:
                del self._watchers[event_id]
                self._pollers.pop(event_id).cancel()

    async def _poll(self, event_id: str, last: list[Stock]) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                snapshot = await self._read(event_id)
            except Exception:
                continue  # a database blip: watchers keep their last snapshot; try again next tick
            if snapshot[0] != last:
                last = snapshot[0]
                self._publish(event_id, snapshot)

    def _publish(self, event_id: str, item: Snapshot) -> None:
        for queue in self._watchers.get(event_id, ()):
            if queue.full():  # a slow watcher only needs the newest snapshot
                queue.get_nowait()
            queue.put_nowait(item)

    def close(self) -> None:
        for task in self._pollers.values():
            task.cancel()

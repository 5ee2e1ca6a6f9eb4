"""All of notify's SQL: notifications (one INSERT per event, made exactly-once by the event id as
primary key) and keyset pages of them newest first. Dead letters go through ticketmesh.dead_letters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.notify.domain import Kind, Notification

_COLUMNS = "id, kind, user_id, order_id, recipient, subject, body, create_time"


def _notification(row: tuple[Any, ...]) -> Notification:
    nid, kind, user_id, order_id, recipient, subject, body, create_time = row
    return Notification(
        id=nid,
        kind=Kind(kind),
        user_id=user_id,
        order_id=order_id,
        recipient=recipient,
        subject=subject,
        body=body,
        create_time=create_time,
    )


class NotifyStore:
    """Reads and writes the notify schema through one connection pool."""

    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool

    async def insert_notification(self, n: Notification) -> Notification | None:
        """Stores the notification unless its event already has one; returns it as stored, or None
        when this event was handled before (a redelivery or a duplicate publish)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO notifications (id, kind, user_id, order_id, recipient, subject, body)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                f" ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
                (n.id, n.kind.value, n.user_id, n.order_id, n.recipient, n.subject, n.body),
            )
            row = await cursor.fetchone()
        return None if row is None else _notification(row)

    async def list_notifications(
        self, *, user_id: str, order_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[Notification]:
        """Newest first; `after` is the (create_time, id) of the previous page's last row."""
        where: list[str] = []
        params: list[Any] = []
        if user_id:
            where.append("user_id = %s")
            params.append(user_id)
        if order_id:
            where.append("order_id = %s")
            params.append(order_id)
        if after is not None:
            where.append("(create_time, id) < (%s, %s)")
            params.extend(after)
        assert user_id or order_id, "the request's validation rule asks for a filter"
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM notifications WHERE {' AND '.join(where)}"
                " ORDER BY create_time DESC, id DESC LIMIT %s",
                (*params, limit),
            )
            rows = await cursor.fetchall()
        return [_notification(row) for row in rows]

"""All of orders' SQL. Rows come back as the Order/User messages the API serves (the contract is
the record here); every state change that others must hear of writes its outbox event in the same
transaction."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.orders import events
from services.orders.domain import Status
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketing.orders.v1 import user_service_pb2 as user_pb2
from ticketing.type.v1 import reservation_strategy_pb2
from ticketmesh import outbox
from ticketmesh.errors import AlreadyExists, NotFound
from ticketmesh.values import Money, timestamp

_ORDER_COLUMNS = (
    "id, user_id, event_id, ticket_type, quantity, status, strategy, amount_currency, amount_units,"
    " amount_nanos, expire_time, payment_method, charge_id, refunded, create_time, update_time, pay_key"
)


def order_from_row(row: tuple[Any, ...]) -> order_pb2.Order:
    (oid, user_id, event_id, ticket_type, quantity, status, strategy, currency, units, nanos, expire_time,
     method, charge_id, refunded, create_time, update_time, _pay_key) = row  # fmt: skip
    return order_pb2.Order(
        id=oid,
        user_id=user_id,
        event_id=event_id,
        ticket_type=ticket_type,
        quantity=quantity,
        status=status,
        amount=Money(currency, units, nanos).to_pb(),
        strategy=strategy,
        expire_time=timestamp(expire_time),
        payment_method=method or None,
        charge_id=charge_id,
        refunded=refunded,
        create_time=timestamp(create_time),
        update_time=timestamp(update_time),
    )


class OrdersStore:
    """Reads and writes the orders schema through one connection pool."""

    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool

    # -- users ----------------------------------------------------------------------------------

    async def create_user(self, conn: AsyncConnection, user_id: str, email: str, name: str) -> user_pb2.User:
        try:
            async with conn.transaction():
                row = await (
                    await conn.execute(
                        "INSERT INTO users (id, email, name) VALUES (%s, %s, %s) RETURNING create_time",
                        (user_id, email, name),
                    )
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"a user with email {email} exists", reason="USER_EXISTS") from None
        assert row is not None
        return user_pb2.User(id=user_id, email=email, name=name, create_time=timestamp(row[0]))

    async def get_user(self, user_id: str) -> user_pb2.User:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT id, email, name, create_time FROM users WHERE id = %s", (user_id,))
            ).fetchone()
        if row is None:
            raise NotFound(f"user {user_id} not found", reason="USER_NOT_FOUND")
        return user_pb2.User(id=row[0], email=row[1], name=row[2], create_time=timestamp(row[3]))

    # -- orders ---------------------------------------------------------------------------------

    async def insert_order(
        self, conn: AsyncConnection, order: order_pb2.Order, hold_seconds: float
    ) -> order_pb2.Order:
        row = await (
            await conn.execute(
                "INSERT INTO orders (id, user_id, event_id, ticket_type, quantity, status, strategy,"
                " amount_currency, amount_units, amount_nanos, expire_time)"
                " VALUES (%s, %s, %s, %s, %s, 'PENDING_PAYMENT', %s, %s, %s, %s, now() + make_interval(secs => %s))"
                f" RETURNING {_ORDER_COLUMNS}",
                (
                    order.id,
                    order.user_id,
                    order.event_id,
                    order.ticket_type,
                    order.quantity,
                    reservation_strategy_pb2.ReservationStrategy.Name(order.strategy),
                    order.amount.currency_code,
                    order.amount.units,
                    order.amount.nanos,
                    hold_seconds,
                ),
            )
        ).fetchone()
        assert row is not None
        return order_from_row(row)

    async def get_order(
        self, order_id: str, conn: AsyncConnection | None = None, *, lock: bool = False
    ) -> order_pb2.Order:
        row = await self._order_row(order_id, conn, lock=lock)
        return order_from_row(row)

    async def pay_key(self, order_id: str, conn: AsyncConnection) -> str:
        return str((await self._order_row(order_id, conn))[-1])

    async def _order_row(
        self, order_id: str, conn: AsyncConnection | None, *, lock: bool = False
    ) -> tuple[Any, ...]:
        sql = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = %s" + (" FOR UPDATE" if lock else "")
        if conn is None:
            async with self.pool.connection() as own:
                row = await (await own.execute(sql, (order_id,))).fetchone()
        else:
            row = await (await conn.execute(sql, (order_id,))).fetchone()
        if row is None:
            raise NotFound(f"order {order_id} not found", reason="ORDER_NOT_FOUND")
        return row

    async def list_orders(
        self, user_id: str, event_id: str, after: tuple[str, str] | None, limit: int
    ) -> list[order_pb2.Order]:
        """Newest first; `after` is the (create_time, id) of the last order of the previous page."""
        where, params = ["true"], []
        if user_id:
            where.append("user_id = %s")
            params.append(user_id)
        if event_id:
            where.append("event_id = %s")
            params.append(event_id)
        if after is not None:
            where.append("(create_time, id) < (%s::timestamptz, %s)")
            params.extend(after)
        sql = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {' AND '.join(where)} ORDER BY create_time DESC, id DESC LIMIT %s"
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, (*params, limit))).fetchall()
        return [order_from_row(row) for row in rows]

    async def set_status(
        self, conn: AsyncConnection, order_id: str, status: Status, **fields: Any
    ) -> order_pb2.Order:
        """Moves an order to `status`, setting other columns; the caller holds the row lock."""
        sets = ["status = %s", "update_time = now()"] + [f"{name} = %s" for name in fields]
        row = await (
            await conn.execute(
                f"UPDATE orders SET {', '.join(sets)} WHERE id = %s RETURNING {_ORDER_COLUMNS}",
                (status.value, *fields.values(), order_id),
            )
        ).fetchone()
        assert row is not None
        return order_from_row(row)

    async def back_to_payable(self, order_id: str, pay_key: str) -> None:
        """A payment attempt ended without money taken: the order may be paid again."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE orders SET status = 'PENDING_PAYMENT', pay_key = '', update_time = now()"
                " WHERE id = %s AND status = 'PAYMENT_IN_PROGRESS' AND pay_key = %s",
                (order_id, pay_key),
            )

    async def announce(self, conn: AsyncConnection, order: order_pb2.Order, request_id: str) -> None:
        """Writes the event for the order's new status to the outbox (same transaction)."""
        user = await (
            await conn.execute("SELECT email, name FROM users WHERE id = %s", (order.user_id,))
        ).fetchone()
        assert user is not None
        subject, event_id, payload = events.for_order(order, user[0], user[1])
        await outbox.enqueue(
            conn, subject, event_id, payload, {"x-request-id": request_id} if request_id else None
        )

    # -- the sweeper's queries ------------------------------------------------------------------

    async def expire_due(self, conn: AsyncConnection, limit: int) -> list[order_pb2.Order]:
        """Unpaid orders whose hold ended, now EXPIRED (in the caller's transaction)."""
        rows = await (
            await conn.execute(
                f"UPDATE orders SET status = 'EXPIRED', update_time = now() WHERE id IN ("
                " SELECT id FROM orders WHERE status = 'PENDING_PAYMENT' AND expire_time < now()"
                " ORDER BY expire_time LIMIT %s FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_ORDER_COLUMNS}",
                (limit,),
            )
        ).fetchall()
        return [order_from_row(row) for row in rows]

    async def stuck_payments(self, grace_seconds: float, limit: int) -> list[tuple[str, str]]:
        """(order id, pay key) of payments under way past their hold plus a grace: a process died."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT id, pay_key FROM orders WHERE status = 'PAYMENT_IN_PROGRESS' AND charge_id = ''"
                    " AND expire_time < now() - make_interval(secs => %s) LIMIT %s",
                    (grace_seconds, limit),
                )
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    async def owed(self, limit: int) -> list[tuple[str, bool, bool, str]]:
        """(order id, stock to release, refund due, charge id) for cancelled/expired orders."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT id, NOT stock_released AND status IN ('CANCELLED', 'EXPIRED'), refund_due, charge_id"
                    " FROM orders WHERE (NOT stock_released AND status IN ('CANCELLED', 'EXPIRED')) OR refund_due"
                    " LIMIT %s",
                    (limit,),
                )
            ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def mark(self, order_id: str, **flags: Any) -> None:
        sets = ", ".join(f"{name} = %s" for name in flags)
        async with self.pool.connection() as conn:
            await conn.execute(f"UPDATE orders SET {sets} WHERE id = %s", (*flags.values(), order_id))

    async def stale_claims(self, older_than_seconds: float, limit: int) -> list[tuple[str, str, str]]:
        """CreateOrder claims never finished (their process died, nobody retried)."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT method, key, resource_id FROM idempotency_keys WHERE state = 'IN_PROGRESS'"
                    " AND method = 'CreateOrder' AND create_time < now() - make_interval(secs => %s) LIMIT %s",
                    (older_than_seconds, limit),
                )
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    async def forget_keys(self, older_than_seconds: float) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE state = 'DONE' AND create_time < now() - make_interval(secs => %s)",
                (older_than_seconds,),
            )

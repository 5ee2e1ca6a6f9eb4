"""All of orders' SQL. Rows come back as the Order/User messages the API serves (the contract is
the record here); every state change that others must hear of writes its outbox event in the same
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.orders import events
from services.orders.domain import OwedKind, Status
from ticketing.orders.v1 import order_service_pb2 as order_pb2
from ticketing.orders.v1 import user_service_pb2 as user_pb2
from ticketing.type.v1 import reservation_strategy_pb2
from ticketmesh import outbox
from ticketmesh.errors import AlreadyExists, NotFound
from ticketmesh.values import Money, timestamp

_ORDER_COLUMNS = (
    "id, user_id, event_id, ticket_type, quantity, status, strategy, amount_currency, amount_units,"
    " amount_nanos, expire_time, payment_method, charge_id, refunded, create_time, update_time"
)


_INSERT_ORDER = (
    "INSERT INTO orders (id, user_id, event_id, ticket_type, quantity, status, strategy,"
    " amount_currency, amount_units, amount_nanos, expire_time)"
    " VALUES (%s, %s, %s, %s, %s, 'PENDING_PAYMENT', %s, %s, %s, %s, now() + make_interval(secs => %s))"
)


def _order_values(order: order_pb2.Order, hold_seconds: float) -> tuple[Any, ...]:
    return (
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
    )


@dataclass(frozen=True)
class PaymentAttempt:
    """The payment under way on an order: the buyer's pay key and the gateway's charge key."""

    pay_key: str
    charge_key: str
    attempts: int


@dataclass(frozen=True)
class OwedWork:
    """One row of owed work, as taken by the sweeper."""

    id: int
    kind: OwedKind
    order_id: str
    charge_ref: str
    attempts: int


def order_from_row(row: tuple[Any, ...]) -> order_pb2.Order:
    (oid, user_id, event_id, ticket_type, quantity, status, strategy, currency, units, nanos, expire_time,
     method, charge_id, refunded, create_time, update_time) = row  # fmt: skip
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
        """Inserts a user in the caller's transaction (a savepoint, so a duplicate email leaves the
        transaction usable for storing that answer)."""
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
        """Inserts a new order, PENDING_PAYMENT until its hold ends (in the caller's transaction)."""
        row = await (
            await conn.execute(
                f"{_INSERT_ORDER} RETURNING {_ORDER_COLUMNS}", _order_values(order, hold_seconds)
            )
        ).fetchone()
        assert row is not None
        return order_from_row(row)

    async def insert_order_closing_claim(
        self, order: order_pb2.Order, hold_seconds: float, method: str, key: str
    ) -> order_pb2.Order:
        """Inserts a new order and deletes the claim that traced its hold until now, in one
        statement: atomic without a transaction, one round trip. For a claim no one will ask
        again (a create without a client key): from here on the order itself is the trace."""
        row = await self._fetch_one(
            f"WITH made AS ({_INSERT_ORDER} RETURNING {_ORDER_COLUMNS}),"
            " closed AS (DELETE FROM idempotency_keys WHERE method = %s AND key = %s)"
            " SELECT * FROM made",
            (*_order_values(order, hold_seconds), method, key),
        )
        assert row is not None
        return order_from_row(row)

    async def _fetch_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchone()

    async def get_order(
        self, order_id: str, conn: AsyncConnection | None = None, *, lock: bool = False
    ) -> order_pb2.Order:
        row = await self._order_row(order_id, conn, lock=lock)
        return order_from_row(row)

    async def lock_for_payment(
        self, conn: AsyncConnection, order_id: str
    ) -> tuple[order_pb2.Order, PaymentAttempt]:
        """The order, row-locked in the caller's transaction, with the payment under way on it."""
        row = await (
            await conn.execute(
                f"SELECT {_ORDER_COLUMNS}, pay_key, charge_key, pay_attempts FROM orders WHERE id = %s FOR UPDATE",
                (order_id,),
            )
        ).fetchone()
        if row is None:
            raise NotFound(f"order {order_id} not found", reason="ORDER_NOT_FOUND")
        return order_from_row(row[:-3]), PaymentAttempt(*row[-3:])

    async def find_orders(
        self, order_ids: list[str], conn: AsyncConnection | None = None
    ) -> dict[str, order_pb2.Order]:
        """The orders among `order_ids` that exist, by id (in the caller's transaction, if given)."""
        sql = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ANY(%s)"
        if conn is None:
            async with self.pool.connection() as own:
                rows = await (await own.execute(sql, (order_ids,))).fetchall()
        else:
            rows = await (await conn.execute(sql, (order_ids,))).fetchall()
        return {row[0]: order_from_row(row) for row in rows}

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
        self, user_id: str, event_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[order_pb2.Order]:
        """Newest first; `after` is the (create_time, id) of the last order of the previous page."""
        where: list[str] = ["true"]
        params: list[Any] = []
        if user_id:
            where.append("user_id = %s")
            params.append(user_id)
        if event_id:
            where.append("event_id = %s")
            params.append(event_id)
        if after is not None:
            where.append("(create_time, id) < (%s, %s)")
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

    async def await_transfer(
        self, conn: AsyncConnection, order_id: str, charge_id: str, term_seconds: float
    ) -> order_pb2.Order:
        """A bank transfer is under way: the order keeps its tickets until the payment term ends."""
        row = await (
            await conn.execute(
                "UPDATE orders SET charge_id = %s, expire_time = now() + make_interval(secs => %s),"
                f" update_time = now() WHERE id = %s RETURNING {_ORDER_COLUMNS}",
                (charge_id, term_seconds, order_id),
            )
        ).fetchone()
        assert row is not None
        return order_from_row(row)

    async def back_to_payable(self, order_id: str, charge_key: str, *, voided: bool = False) -> bool:
        """A payment attempt ended without money taken: the order may be paid again. A voided
        attempt is counted, so that the next one is asked under a new charge key. Only the attempt
        named by `charge_key` is undone (a later one is not this caller's)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE orders SET status = 'PENDING_PAYMENT', pay_key = '', charge_key = '',"
                " pay_attempts = pay_attempts + %s, update_time = now()"
                " WHERE id = %s AND status = 'PAYMENT_IN_PROGRESS' AND charge_key = %s",
                (1 if voided else 0, order_id, charge_key),
            )
            return cur.rowcount == 1

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
        """Unpaid orders whose hold ended, now EXPIRED (in the caller's transaction): those waiting
        to be paid, and those waiting for a bank transfer past its payment term (their expire_time
        is the term's end). A card payment under way is never expired: its outcome comes first."""
        rows = await (
            await conn.execute(
                f"UPDATE orders SET status = 'EXPIRED', update_time = now() WHERE id IN ("
                " SELECT id FROM orders WHERE expire_time < now() AND (status = 'PENDING_PAYMENT'"
                "  OR (status = 'PAYMENT_IN_PROGRESS' AND payment_method = 'BANK_TRANSFER' AND charge_id != ''))"
                " ORDER BY expire_time LIMIT %s FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_ORDER_COLUMNS}",
                (limit,),
            )
        ).fetchall()
        return [order_from_row(row) for row in rows]

    async def check_unresolved_payments(self, older_than_seconds: float) -> int:
        """Owes a CHECK_PAYMENT for every card payment left under way with no outcome for longer
        than any call to the gateway can last (its process died mid-call); returns how many."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO owed_work (kind, order_id, charge_ref)"
                " SELECT 'CHECK_PAYMENT', id, charge_key FROM orders"
                "  WHERE status = 'PAYMENT_IN_PROGRESS' AND charge_id = '' AND charge_key != ''"
                "    AND update_time < now() - make_interval(secs => %s)"
                " ON CONFLICT DO NOTHING",
                (older_than_seconds,),
            )
            return cur.rowcount

    # -- owed work ------------------------------------------------------------------------------

    async def owe(self, conn: AsyncConnection, kind: OwedKind, order_id: str, charge_ref: str = "") -> None:
        """Records work owed, in the transaction that makes it owed; owing it twice is owing it once."""
        await conn.execute(
            "INSERT INTO owed_work (kind, order_id, charge_ref) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (kind.value, order_id, charge_ref),
        )

    async def take_owed(self, limit: int, lease_seconds: float) -> list[OwedWork]:
        """Up to `limit` rows of owed work that are due, oldest due first. Each is leased (its next
        attempt moved `lease_seconds` ahead), so another orders process does not take it meanwhile."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "UPDATE owed_work SET next_attempt_time = now() + make_interval(secs => %s)"
                    " WHERE id IN (SELECT id FROM owed_work WHERE parked_time IS NULL AND next_attempt_time <= now()"
                    "  ORDER BY next_attempt_time, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                    " RETURNING id, kind, order_id, charge_ref, attempts",
                    (lease_seconds, limit),
                )
            ).fetchall()
        return sorted((OwedWork(r[0], OwedKind(r[1]), r[2], r[3], r[4]) for r in rows), key=lambda w: w.id)

    async def owed_failed(self, work_id: int, error: str, retry_in: float, park: bool) -> None:
        """Counts a failed attempt: the row is due again after `retry_in`, or parked for good."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE owed_work SET attempts = attempts + 1, last_error = %s,"
                " next_attempt_time = now() + make_interval(secs => %s),"
                " parked_time = CASE WHEN %s THEN now() END WHERE id = %s",
                (error[:1000], retry_in, park, work_id),
            )

    async def owed_finished(
        self, conn: AsyncConnection, kind: OwedKind, order_id: str, charge_ref: str
    ) -> None:
        """Records owed work done, whoever did it (the call that made it owed, or the sweeper)."""
        await conn.execute(
            "DELETE FROM owed_work WHERE kind = %s AND order_id = %s AND charge_ref = %s",
            (kind.value, order_id, charge_ref),
        )

    async def mark(self, conn: AsyncConnection, order_id: str, **flags: Any) -> None:
        sets = ", ".join(f"{name} = %s" for name in flags)
        await conn.execute(f"UPDATE orders SET {sets} WHERE id = %s", (*flags.values(), order_id))

    async def mark_refunded(self, conn: AsyncConnection, order_id: str, charge_id: str) -> None:
        """The order's own charge was given back (a refund of another charge says nothing of it)."""
        await conn.execute(
            "UPDATE orders SET refund_due = false, refunded = true WHERE id = %s AND charge_id = %s",
            (order_id, charge_id),
        )

    # -- the books --------------------------------------------------------------------------------

    async def books_cursor(self) -> tuple[datetime, str]:
        """How far the books' reconciliation has read payments' charges."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT update_time, charge_id FROM books_cursor")).fetchone()
        assert row is not None, "the migration seeds the cursor row"
        return row[0], row[1]

    async def move_books_cursor(self, update_time: datetime, charge_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE books_cursor SET update_time = %s, charge_id = %s", (update_time, charge_id)
            )

    async def stale_claims(
        self, methods: tuple[str, ...], older_than_seconds: float, limit: int
    ) -> list[tuple[str, str, str]]:
        """(method, key, resource id) of claims never finished (their process died or their answer
        was lost, and nobody retried), oldest first."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT method, key, resource_id FROM idempotency_keys WHERE state = 'IN_PROGRESS'"
                    " AND method = ANY(%s) AND create_time < now() - make_interval(secs => %s)"
                    " AND locked_until < now() ORDER BY create_time LIMIT %s",
                    (list(methods), older_than_seconds, limit),
                )
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    async def forget_keys(self, older_than_seconds: float) -> None:
        """Deletes keys older than their lifetime, whatever their state: a claim that old is no
        longer anyone's, and a stored answer that old is no longer promised."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE create_time < now() - make_interval(secs => %s)",
                (older_than_seconds,),
            )

"""All of inventory's SQL. The hot path (Reserve with COMPARE_AND_SET) is one statement, one round
trip, raw psycopg; the rest is plain SQL too, since every query here is small and fixed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.inventory.domain import (
    Event,
    EventSpec,
    Reservation,
    State,
    Stock,
    Strategy,
    TicketTypeSpec,
    sold_out,
)
from ticketmesh.errors import AlreadyExists, FailedPrecondition, NotFound
from ticketmesh.idempotency import reused
from ticketmesh.values import Money

# Take stock and record the hold in one statement. `existing` makes a repeat of the same
# reservation id a no-op; a concurrent repeat trips the primary key and rolls the whole statement
# back, stock included. %(version)s is NULL for COMPARE_AND_SET and the read version for OPTIMISTIC.
_RESERVE = """
WITH existing AS (
    SELECT 1 FROM reservations WHERE id = %(id)s
), taken AS (
    UPDATE ticket_types
       SET available = available - %(q)s, held = held + %(q)s, version = version + 1
     WHERE event_id = %(event_id)s AND name = %(ticket_type)s AND available >= %(q)s
       AND (%(version)s::bigint IS NULL OR version = %(version)s::bigint)
       AND NOT EXISTS (SELECT 1 FROM existing)
    RETURNING price_currency, price_units, price_nanos
), made AS (
    INSERT INTO reservations
        (id, event_id, ticket_type, quantity, state, strategy, price_currency, price_units, price_nanos)
    SELECT %(id)s, %(event_id)s, %(ticket_type)s, %(q)s, 'HELD', %(strategy)s,
           price_currency, price_units, price_nanos
      FROM taken
    RETURNING price_currency, price_units, price_nanos, create_time
)
SELECT 'made', price_currency, price_units, price_nanos, create_time FROM made
UNION ALL
SELECT 'seen', NULL::text, NULL::bigint, NULL::int, NULL::timestamptz FROM existing
UNION ALL
SELECT 'stock', NULL::text, available::bigint, NULL::int, NULL::timestamptz
  FROM ticket_types
 WHERE event_id = %(event_id)s AND name = %(ticket_type)s
   AND NOT EXISTS (SELECT 1 FROM existing)
"""

_RESERVATION_COLUMNS = (
    "id, event_id, ticket_type, quantity, state, price_currency, price_units, price_nanos, "
    "create_time, update_time"
)

# Bounded retry for OPTIMISTIC; past it one compare-and-set attempt settles the answer, so a
# buyer always gets a hold or SOLD_OUT, never "try again".
OPTIMISTIC_ATTEMPTS = 20


class ReserveConflict(Exception):
    """An OPTIMISTIC attempt lost its race (the version moved); counted, then retried."""


def _reservation(row: tuple[Any, ...]) -> Reservation:
    rid, event_id, ticket_type, quantity, state, currency, units, nanos, create_time, update_time = row
    return Reservation(
        id=rid,
        event_id=event_id,
        ticket_type=ticket_type,
        quantity=quantity,
        state=State(state),
        unit_price=Money(currency, units, nanos),
        create_time=create_time,
        update_time=update_time,
    )


def _new_hold(
    rid: str, event_id: str, ticket_type: str, quantity: int, unit_price: Money, created: datetime
) -> Reservation:
    return Reservation(rid, event_id, ticket_type, quantity, State.HELD, unit_price, created, created)


class InventoryStore:
    """Reads and writes the inventory schema through one connection pool."""

    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool

    # -- reservations ------------------------------------------------------------------------

    async def reserve(
        self, rid: str, event_id: str, ticket_type: str, quantity: int, strategy: Strategy
    ) -> tuple[Reservation, int]:
        """Holds `quantity` tickets; returns the reservation and the OPTIMISTIC conflicts it met."""
        if strategy is Strategy.PESSIMISTIC:
            return await self._reserve_pessimistic(rid, event_id, ticket_type, quantity), 0
        if strategy is Strategy.OPTIMISTIC:
            conflicts = 0
            for _ in range(OPTIMISTIC_ATTEMPTS):
                try:
                    return await self._reserve_optimistic(rid, event_id, ticket_type, quantity), conflicts
                except ReserveConflict:
                    conflicts += 1
            return await self._reserve_once(rid, event_id, ticket_type, quantity, strategy, None), conflicts
        return await self._reserve_once(rid, event_id, ticket_type, quantity, strategy, None), 0

    async def _reserve_once(
        self,
        rid: str,
        event_id: str,
        ticket_type: str,
        quantity: int,
        strategy: Strategy,
        version: int | None,
    ) -> Reservation:
        params = {
            "id": rid,
            "event_id": event_id,
            "ticket_type": ticket_type,
            "q": quantity,
            "strategy": strategy.value,
            "version": version,
        }
        try:
            async with self.pool.connection() as conn:
                rows = await (await conn.execute(_RESERVE, params)).fetchall()
        except psycopg.errors.UniqueViolation:
            return await self.get_reservation(rid)  # a concurrent repeat won; it is the answer
        outcome = {row[0]: row for row in rows}
        if "made" in outcome:
            _, currency, units, nanos, created = outcome["made"]
            return _new_hold(rid, event_id, ticket_type, quantity, Money(currency, units, nanos), created)
        if "seen" in outcome:
            return await self.get_reservation(rid)
        if "stock" in outcome:
            available = int(outcome["stock"][2])
            if available >= quantity and version is not None:
                raise ReserveConflict
            # The read above is the statement's snapshot; the UPDATE saw newer stock, which is lower.
            raise sold_out(min(available, quantity - 1), quantity)
        raise await self._missing(event_id, ticket_type)

    async def _reserve_optimistic(
        self, rid: str, event_id: str, ticket_type: str, quantity: int
    ) -> Reservation:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT available, version FROM ticket_types WHERE event_id = %s AND name = %s",
                    (event_id, ticket_type),
                )
            ).fetchone()
        if row is None:
            raise await self._missing(event_id, ticket_type)
        available, version = row
        if available < quantity:
            existing = await self._find_reservation(rid)
            if existing is not None:
                return existing
            raise sold_out(available, quantity)
        return await self._reserve_once(rid, event_id, ticket_type, quantity, Strategy.OPTIMISTIC, version)

    async def _reserve_pessimistic(
        self, rid: str, event_id: str, ticket_type: str, quantity: int
    ) -> Reservation:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                existing = await self._find_reservation(rid, conn)
                if existing is not None:
                    return existing
                row = await (
                    await conn.execute(
                        "SELECT available, price_currency, price_units, price_nanos FROM ticket_types"
                        " WHERE event_id = %s AND name = %s FOR UPDATE",
                        (event_id, ticket_type),
                    )
                ).fetchone()
                if row is None:
                    raise await self._missing(event_id, ticket_type)
                available, currency, units, nanos = row
                if available < quantity:
                    raise sold_out(available, quantity)
                await conn.execute(
                    "UPDATE ticket_types SET available = available - %(q)s, held = held + %(q)s,"
                    " version = version + 1 WHERE event_id = %(e)s AND name = %(t)s",
                    {"q": quantity, "e": event_id, "t": ticket_type},
                )
                made = await (
                    await conn.execute(
                        "INSERT INTO reservations (id, event_id, ticket_type, quantity, state, strategy,"
                        " price_currency, price_units, price_nanos)"
                        " VALUES (%s, %s, %s, %s, 'HELD', 'PESSIMISTIC', %s, %s, %s) RETURNING create_time",
                        (rid, event_id, ticket_type, quantity, currency, units, nanos),
                    )
                ).fetchone()
                assert made is not None
                return _new_hold(rid, event_id, ticket_type, quantity, Money(currency, units, nanos), made[0])
        except psycopg.errors.UniqueViolation:
            return await self.get_reservation(rid)

    async def release(self, rid: str) -> tuple[Reservation, bool]:
        """HELD or SOLD -> RELEASED, stock back to available; returns the reservation and whether
        this call gave the stock back. An unknown id leaves a RELEASED tombstone, so a Reserve that
        arrives late (after its order gave up) takes nothing."""
        async with self.pool.connection() as conn, conn.transaction():
            current = await self._find_reservation(rid, conn, lock=True)
            if current is None:
                await conn.execute(
                    "INSERT INTO reservations (id, event_id, ticket_type, quantity, state, strategy)"
                    " VALUES (%s, '', '', 0, 'RELEASED', '') ON CONFLICT (id) DO NOTHING",
                    (rid,),
                )
                current = await self._find_reservation(rid, conn, lock=True)
                assert current is not None
            if current.state is State.RELEASED:
                return current, False
            from_held = current.state is State.HELD
            await conn.execute(
                "UPDATE ticket_types SET available = available + %(q)s,"
                " held = held - %(h)s, sold = sold - %(s)s, version = version + 1"
                " WHERE event_id = %(e)s AND name = %(t)s",
                {
                    "q": current.quantity,
                    "h": current.quantity if from_held else 0,
                    "s": 0 if from_held else current.quantity,
                    "e": current.event_id,
                    "t": current.ticket_type,
                },
            )
            return await self._set_state(conn, rid, State.RELEASED), True

    async def confirm(self, rid: str) -> tuple[Reservation, bool]:
        """HELD -> SOLD; returns the reservation and whether this call sold it. SOLD stays SOLD;
        RELEASED cannot be sold (its stock went back)."""
        async with self.pool.connection() as conn, conn.transaction():
            current = await self._find_reservation(rid, conn, lock=True)
            if current is None:
                raise NotFound(f"reservation {rid} not found", reason="RESERVATION_NOT_FOUND")
            if current.state is State.SOLD:
                return current, False
            if current.state is State.RELEASED:
                raise FailedPrecondition(
                    f"reservation {rid} was released; its tickets are no longer held",
                    reason="RESERVATION_RELEASED",
                )
            await conn.execute(
                "UPDATE ticket_types SET held = held - %(q)s, sold = sold + %(q)s, version = version + 1"
                " WHERE event_id = %(e)s AND name = %(t)s",
                {"q": current.quantity, "e": current.event_id, "t": current.ticket_type},
            )
            return await self._set_state(conn, rid, State.SOLD), True

    async def get_reservation(self, rid: str) -> Reservation:
        found = await self._find_reservation(rid)
        if found is None:
            raise NotFound(f"reservation {rid} not found", reason="RESERVATION_NOT_FOUND")
        return found

    async def _find_reservation(
        self, rid: str, conn: AsyncConnection | None = None, *, lock: bool = False
    ) -> Reservation | None:
        sql = f"SELECT {_RESERVATION_COLUMNS} FROM reservations WHERE id = %s" + (
            " FOR UPDATE" if lock else ""
        )
        if conn is None:
            async with self.pool.connection() as own:
                row = await (await own.execute(sql, (rid,))).fetchone()
        else:
            row = await (await conn.execute(sql, (rid,))).fetchone()
        return None if row is None else _reservation(row)

    async def _set_state(self, conn: AsyncConnection, rid: str, state: State) -> Reservation:
        row = await (
            await conn.execute(
                f"UPDATE reservations SET state = %s, update_time = now() WHERE id = %s"
                f" RETURNING {_RESERVATION_COLUMNS}",
                (state.value, rid),
            )
        ).fetchone()
        assert row is not None
        return _reservation(row)

    async def _missing(self, event_id: str, ticket_type: str) -> NotFound:
        async with self.pool.connection() as conn:
            found = await (await conn.execute("SELECT 1 FROM events WHERE id = %s", (event_id,))).fetchone()
        if found is None:
            return NotFound(f"event {event_id} not found", reason="EVENT_NOT_FOUND")
        return NotFound(
            f"event {event_id} has no ticket type {ticket_type!r}",
            reason="TICKET_TYPE_NOT_FOUND",
        )

    # -- events ------------------------------------------------------------------------------

    async def create_event(self, spec: EventSpec, key: str, fingerprint: str) -> tuple[Event, bool]:
        """Creates the event; returns it and whether it was a replay of an earlier request."""
        if key:
            replay = await self._event_by_key(key, fingerprint)
            if replay is not None:
                return replay, True
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO events (id, display_name, venue, start_time, request_id, request_fingerprint)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (spec.id, spec.display_name, spec.venue, spec.start_time, key or None, fingerprint),
                )
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO ticket_types (event_id, name, position, price_currency, price_units,"
                        " price_nanos, capacity, available) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        [
                            (
                                spec.id,
                                tt.name,
                                i,
                                tt.price.currency,
                                tt.price.units,
                                tt.price.nanos,
                                tt.capacity,
                                tt.capacity,
                            )
                            for i, tt in enumerate(spec.ticket_types)
                        ],
                    )
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "events_pkey":
                raise AlreadyExists(f"event {spec.id} already exists", reason="EVENT_EXISTS") from None
            replay = await self._event_by_key(key, fingerprint)  # a concurrent duplicate won
            assert replay is not None
            return replay, True
        return await self.get_event(spec.id), False

    async def _event_by_key(self, key: str, fingerprint: str) -> Event | None:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT id, request_fingerprint FROM events WHERE request_id = %s", (key,))
            ).fetchone()
        if row is None:
            return None
        if row[1] != fingerprint:
            raise reused(key)
        return await self.get_event(row[0])

    async def get_event(self, event_id: str) -> Event:
        events = await self._load_events("WHERE id = %(id)s", {"id": event_id})
        if not events:
            raise NotFound(f"event {event_id} not found", reason="EVENT_NOT_FOUND")
        return events[0][1]

    async def list_events(self, after_seq: int, limit: int) -> list[tuple[int, Event]]:
        """Events after position `after_seq`, oldest first; up to `limit`."""
        return await self._load_events(
            "WHERE seq > %(after)s ORDER BY seq LIMIT %(limit)s", {"after": after_seq, "limit": limit}
        )

    async def _load_events(self, where: str, params: dict[str, Any]) -> list[tuple[int, Event]]:
        async with self.pool.connection() as conn:
            events = await (
                await conn.execute(
                    f"SELECT seq, id, display_name, venue, start_time, create_time FROM events {where}",
                    params,
                )
            ).fetchall()
            ids = [row[1] for row in events]
            types = await (
                await conn.execute(
                    "SELECT event_id, name, price_currency, price_units, price_nanos, capacity"
                    " FROM ticket_types WHERE event_id = ANY(%s) ORDER BY event_id, position",
                    (ids,),
                )
            ).fetchall()
        by_event: dict[str, list[TicketTypeSpec]] = {}
        for event_id, name, currency, units, nanos, capacity in types:
            by_event.setdefault(event_id, []).append(
                TicketTypeSpec(name, Money(currency, units, nanos), capacity)
            )
        return [
            (seq, Event(eid, display, venue, start, tuple(by_event.get(eid, ())), created))
            for seq, eid, display, venue, start, created in events
        ]

    async def availability(self, event_id: str) -> tuple[list[Stock], datetime]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT name, capacity, available, held, sold, now() FROM ticket_types"
                    " WHERE event_id = %s ORDER BY position",
                    (event_id,),
                )
            ).fetchall()
        if not rows:
            raise NotFound(f"event {event_id} not found", reason="EVENT_NOT_FOUND")
        return [Stock(*row[:5]) for row in rows], rows[0][5]

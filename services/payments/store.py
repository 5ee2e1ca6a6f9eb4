"""All of payments' SQL: charges (one INSERT per new charge, made safe by the key and the per-order
unique index), voids (a tombstone under the key), the reconciliation listing, their settlement
(status and outbox event in one transaction) and the shared mode row, cached briefly per process."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.payments.domain import (
    VOID_AMOUNT,
    Charge,
    ChargePage,
    ChargeRequest,
    Method,
    Mode,
    Outcome,
    Status,
    charge_not_found,
    check_refundable,
    order_already_charged,
)
from services.payments.events import CHARGE_SETTLED_SUBJECT, charge_settled
from ticketmesh import outbox
from ticketmesh.idempotency import reused
from ticketmesh.values import Money

_COLUMNS = (
    "id, key, order_id, amount_currency, amount_units, amount_nanos, method, status, decline_reason, "
    "create_time, update_time"
)
_ONE_LIVE_PER_ORDER = "charges_one_live_per_order"


def _charge(row: tuple[Any, ...]) -> Charge:
    cid, key, order_id, currency, units, nanos, method, status, reason, create_time, update_time = row
    return Charge(
        id=cid,
        key=key,
        order_id=order_id,
        amount=Money(currency, units, nanos),
        method=None if method is None else Method(method),
        status=Status(status),
        decline_reason=reason,
        create_time=create_time,
        update_time=update_time,
    )


class PaymentsStore:
    """Reads and writes the payments schema through one connection pool."""

    def __init__(self, pool: AsyncConnectionPool, mode_cache_seconds: float):
        self.pool = pool
        self.mode_cache_seconds = mode_cache_seconds
        self._mode: Mode | None = None
        self._mode_read_at = 0.0

    # -- charges -----------------------------------------------------------------------------

    async def insert_charge(
        self,
        charge_id: str,
        request: ChargeRequest,
        outcome: Outcome,
        settle_delay_ms: int | None = None,
        request_id: str = "",
    ) -> tuple[Charge, bool]:
        """Stores a new charge, due to settle settle_delay_ms from now (None: never); returns it and
        whether a concurrent call with the same key won (its charge is then the answer). The
        request id is kept for the ChargeSettled event a bank transfer publishes later."""
        try:
            row = await self._fetch_one(
                f"INSERT INTO charges (id, key, order_id, amount_currency, amount_units, amount_nanos,"
                f" method, status, decline_reason, settle_after, request_id)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                f" now() + %s::int * interval '1 millisecond', %s)"
                f" RETURNING {_COLUMNS}",
                (
                    charge_id,
                    request.key,
                    request.order_id,
                    request.amount.currency,
                    request.amount.units,
                    request.amount.nanos,
                    request.method.value,
                    outcome.status.value,
                    outcome.decline_reason,
                    settle_delay_ms,
                    request_id,
                ),
            )
        except psycopg.errors.UniqueViolation as exc:
            # Whichever index tripped, a row with our key means a concurrent duplicate won. (A
            # duplicate can trip the per-order index first, if Postgres checks that one first.)
            # A void that won is the answer too: the key was given up, and nothing is taken.
            winner = await self.find_by_key(request.key)
            if winner is not None:
                if not winner.answers(request):
                    raise reused(request.key) from None
                return winner, True
            if exc.diag.constraint_name == _ONE_LIVE_PER_ORDER:
                live = await self._fetch_one(
                    "SELECT id FROM charges WHERE order_id = %s"
                    " AND status IN ('APPROVED', 'PENDING', 'REFUNDED')",
                    (request.order_id,),
                )
                assert live is not None, "the per-order index tripped, so a live charge exists"
                raise order_already_charged(request.order_id, live[0]) from None
            raise
        assert row is not None
        return _charge(row), False

    async def void(
        self, charge_id: str, key: str, order_id: str, request_id: str = ""
    ) -> tuple[Charge, bool]:
        """Gives the key up: stores a VOIDED charge under it unless a charge with that key exists,
        and returns the key's charge and whether this call voided it. The key's UNIQUE constraint
        decides a race with a CreateCharge in flight: ON CONFLICT waits for the other insert, and
        whichever row committed first is the key's charge for good."""
        row = await self._fetch_one(
            f"INSERT INTO charges (id, key, order_id, amount_currency, amount_units, amount_nanos,"
            f" method, status, request_id)"
            f" VALUES (%s, %s, %s, %s, %s, %s, NULL, 'VOIDED', %s)"
            f" ON CONFLICT (key) DO NOTHING RETURNING {_COLUMNS}",
            (
                charge_id,
                key,
                order_id,
                VOID_AMOUNT.currency,
                VOID_AMOUNT.units,
                VOID_AMOUNT.nanos,
                request_id,
            ),
        )
        if row is not None:
            return _charge(row), True
        # The key has a charge (committed before ours, since ON CONFLICT waited for it).
        return await self.get_by_key(key), False

    async def list_changed(self, page: ChargePage) -> list[Charge]:
        """Charges in order of last change, after (page.after, page.after_id) and changed before
        page.before; the row comparison walks the charges_by_change index."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {_COLUMNS} FROM charges"
                    f" WHERE (update_time, id) > (%s, %s) AND update_time < %s"
                    f" ORDER BY update_time, id LIMIT %s",
                    (page.after, page.after_id, page.before, page.size),
                )
            ).fetchall()
        return [_charge(row) for row in rows]

    async def find_by_key(self, key: str) -> Charge | None:
        row = await self._fetch_one(f"SELECT {_COLUMNS} FROM charges WHERE key = %s", (key,))
        return None if row is None else _charge(row)

    async def get_by_key(self, key: str) -> Charge:
        found = await self.find_by_key(key)
        if found is None:
            raise charge_not_found(f"with key {key!r}")
        return found

    async def get(self, charge_id: str) -> Charge:
        row = await self._fetch_one(f"SELECT {_COLUMNS} FROM charges WHERE id = %s", (charge_id,))
        if row is None:
            raise charge_not_found(charge_id)
        return _charge(row)

    async def refund(self, charge_id: str) -> Charge:
        """APPROVED -> REFUNDED in one conditional UPDATE; anything else is read and judged."""
        row = await self._fetch_one(
            f"UPDATE charges SET status = 'REFUNDED', update_time = now()"
            f" WHERE id = %s AND status = 'APPROVED' RETURNING {_COLUMNS}",
            (charge_id,),
        )
        if row is not None:
            return _charge(row)
        current = await self.get(charge_id)
        check_refundable(current)
        return current  # already REFUNDED: a repeat changes nothing

    async def settle_due(self, limit: int) -> list[tuple[Charge, str]]:
        """Approves up to `limit` PENDING charges whose settle_after has passed and adds a
        ChargeSettled for each to the outbox, all in one transaction: a crash leaves either both or
        neither. Rows another settler holds are skipped, and a charge leaves PENDING once, so each
        settles once and its event (with a deterministic id) is written once. Returns each charge
        with the request id that created it, which its event carries as x-request-id."""
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (
                await conn.execute(
                    f"WITH due AS (SELECT id FROM charges WHERE status = 'PENDING' AND settle_after <= now()"
                    f" ORDER BY settle_after LIMIT %s FOR UPDATE SKIP LOCKED)"
                    f" UPDATE charges SET status = 'APPROVED', update_time = now()"
                    f" FROM due WHERE charges.id = due.id AND charges.status = 'PENDING'"
                    f" RETURNING {', '.join('charges.' + c for c in _COLUMNS.split(', '))},"
                    f" charges.request_id",
                    (limit,),
                )
            ).fetchall()
            settled = [(_charge(row[:-1]), str(row[-1])) for row in rows]
            for charge, request_id in settled:
                event = charge_settled(charge)
                await outbox.enqueue(
                    conn,
                    CHARGE_SETTLED_SUBJECT,
                    event.id,
                    event.SerializeToString(),
                    {"x-request-id": request_id} if request_id else None,
                )
        return settled

    # -- mode --------------------------------------------------------------------------------

    async def mode(self) -> Mode:
        """The shared mode, re-read when this process's copy is older than mode_cache_seconds."""
        now = time.monotonic()
        if self._mode is None or now - self._mode_read_at >= self.mode_cache_seconds:
            row = await self._fetch_one(
                "SELECT failure_rate, decline_rate, latency_ms, settle_delay_ms FROM mode", ()
            )
            assert row is not None, "the migration seeds the mode row"
            self._mode, self._mode_read_at = Mode(*row), now
        return self._mode

    async def set_mode(self, mode: Mode) -> Mode:
        row = await self._fetch_one(
            "UPDATE mode SET failure_rate = %s, decline_rate = %s, latency_ms = %s, settle_delay_ms = %s"
            " RETURNING failure_rate, decline_rate, latency_ms, settle_delay_ms",
            (mode.failure_rate, mode.decline_rate, mode.latency_ms, mode.settle_delay_ms),
        )
        assert row is not None, "the migration seeds the mode row"
        self._mode, self._mode_read_at = Mode(*row), time.monotonic()
        return self._mode

    async def _fetch_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async with self.pool.connection() as conn:
            return await (await conn.execute(sql, params)).fetchone()

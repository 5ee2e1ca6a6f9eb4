"""Orders' store against real Postgres, in a schema of its own: the owed-work queue (oldest due first,
leased, a backoff per row, parked after its attempts) and the key reaper (every state)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest_asyncio

from services.orders.domain import OwedKind
from services.orders.store import OrdersStore
from ticketmesh import migrate
from ticketmesh.db import DeadlinePool

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "orders" / "migrations"


@pytest_asyncio.fixture(loop_scope="session")
async def store(infra, schema: str, pool: DeadlinePool) -> OrdersStore:
    await asyncio.to_thread(migrate.upgrade, infra.database_url, schema, MIGRATIONS)
    return OrdersStore(pool)


async def _owe(store: OrdersStore, *rows: tuple[OwedKind, str, str]) -> None:
    async with store.pool.connection() as conn, conn.transaction():
        for kind, order_id, ref in rows:
            await store.owe(conn, kind, order_id, ref)


async def test_owed_work_is_taken_once_oldest_first_and_leased(store: OrdersStore) -> None:
    await _owe(store, (OwedKind.RELEASE_STOCK, "ord_a", ""), (OwedKind.REFUND_CHARGE, "ord_b", "ch_1"))
    await _owe(store, (OwedKind.RELEASE_STOCK, "ord_a", ""))  # owed twice is owed once
    taken = await store.take_owed(10, lease_seconds=30)
    assert [(w.kind, w.order_id, w.charge_ref) for w in taken] == [
        (OwedKind.RELEASE_STOCK, "ord_a", ""),
        (OwedKind.REFUND_CHARGE, "ord_b", "ch_1"),
    ]
    assert await store.take_owed(10, lease_seconds=30) == []  # leased: nobody else takes them
    async with store.pool.connection() as conn:
        await store.owed_finished(conn, OwedKind.RELEASE_STOCK, "ord_a", "")
        left = await (await conn.execute("SELECT order_id FROM owed_work")).fetchall()
    assert left == [("ord_b",)]


async def test_a_failing_row_backs_off_and_is_parked_and_does_not_block_others(store: OrdersStore) -> None:
    await _owe(store, (OwedKind.REFUND_CHARGE, "ord_poison", "ch_unknown"))
    [poison] = await store.take_owed(10, lease_seconds=0)
    await store.owed_failed(poison.id, "NOT_FOUND: charge not found", retry_in=60, park=False)
    await _owe(store, (OwedKind.RELEASE_STOCK, "ord_real", ""))
    # The poison waits out its backoff; the row owed after it is due now.
    assert [w.order_id for w in await store.take_owed(10, lease_seconds=0)] == ["ord_real"]
    await store.owed_failed(poison.id, "NOT_FOUND: charge not found", retry_in=0, park=True)
    async with store.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT attempts, last_error, parked_time IS NOT NULL FROM owed_work WHERE id = %s",
                (poison.id,),
            )
        ).fetchone()
    assert row == (2, "NOT_FOUND: charge not found", True)
    assert all(w.order_id != "ord_poison" for w in await store.take_owed(10, lease_seconds=0))  # parked


async def test_the_reaper_forgets_old_keys_in_every_state(store: OrdersStore) -> None:
    async with store.pool.connection() as conn:
        for key, state, age in (
            ("old-done", "DONE", 90),
            ("old-claim", "IN_PROGRESS", 90),
            ("new", "DONE", 0),
        ):
            await conn.execute(
                "INSERT INTO idempotency_keys (method, key, fingerprint, resource_id, state, locked_until, create_time)"
                " VALUES ('CreateOrder', %s, 'f', 'ord_x', %s, now(), now() - make_interval(secs => %s))",
                (key, state, age),
            )
    await store.forget_keys(60)
    async with store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT key FROM idempotency_keys")).fetchall()
    assert rows == [("new",)]


async def test_stale_claims_are_only_those_nobody_holds(store: OrdersStore) -> None:
    async with store.pool.connection() as conn:
        for key, locked in (("held", "now() + interval '10 s'"), ("stale", "now() - interval '1 s'")):
            await conn.execute(
                "INSERT INTO idempotency_keys (method, key, fingerprint, resource_id, state, locked_until, create_time)"
                f" VALUES ('CreateOrder/unkeyed', %s, 'f', %s, 'IN_PROGRESS', {locked}, now() - interval '30 s')",
                (key, f"ord_{key}"),
            )
    assert await store.stale_claims(("CreateOrder/unkeyed",), 15, 10) == [
        ("CreateOrder/unkeyed", "stale", "ord_stale")
    ]
    assert await store.stale_claims(("CreateOrder",), 15, 10) == []

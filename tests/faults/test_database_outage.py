"""Postgres away for 10 s under a purchase load with card payments and bank transfers: every
consumer (inventory's, orders', notify's) waits the outage out, so nothing is dead-lettered, every
order the buyers were told is confirmed is CONFIRMED, every transfer settles, and the invariants
hold."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import psycopg

from stack import Stack
from stack.invariants import violations
from tests.e2e.readings import metric_total
from tests.e2e.shop import eventually, new_event, new_user
from tests.faults.purchase_load import PurchaseLoad, Tally

OUTAGE_SECONDS = 10.0
# Every service with a durable consumer; each one's consumer label and schema have its name.
CONSUMERS = ("inventory", "orders", "notify")
# What broker.consume logs each time it waits out a transient failure in place.
RETRIED_IN_PLACE = "transient failure, retrying in place"


async def _statuses(database_url: str, event_id: str) -> dict[str, str]:
    """Order id -> status, for every order of the event."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute("SELECT id, status FROM orders.orders WHERE event_id = %s", (event_id,))
        return {order_id: status for order_id, status in await cursor.fetchall()}


async def _dead_letter_rows(database_url: str) -> dict[str, int]:
    """Schema -> number of dead letters, for every schema that has the table."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'dead_letters'"
        )
        schemas = sorted(row[0] for row in await cursor.fetchall())
        counts = {}
        for schema in schemas:
            cursor = await conn.execute(f'SELECT count(*) FROM "{schema}".dead_letters')
            row = await cursor.fetchone()
            counts[schema] = row[0] if row else 0
    return counts


def _log_sizes(stack: Stack) -> dict[str, int]:
    return {name: _log(stack, name).stat().st_size for name in stack.replicas()}


def _log(stack: Stack, name: str) -> Path:
    return stack.log_dir / f"{name}.log"


def _retried_in_place_since(stack: Stack, sizes: dict[str, int]) -> dict[str, int]:
    """Replica -> how many times its consumer waited out a failure in place since `sizes`."""
    counts = {}
    for name, offset in sizes.items():
        with _log(stack, name).open("rb") as log:
            log.seek(offset)
            counts[name] = log.read().decode(errors="replace").count(RETRIED_IN_PLACE)
    return counts


async def test_a_10_s_database_outage_under_load_dead_letters_nothing(stack, rest) -> None:
    event_id = await new_event(rest, 100_000)
    users = [await new_user(rest) for _ in range(4)]
    sizes = _log_sizes(stack)
    cards = PurchaseLoad(stack.public_url, event_id, users, buyers=6)
    transfers = PurchaseLoad(stack.public_url, event_id, users, buyers=3, payment_method="BANK_TRANSFER")
    async with cards, transfers:
        await asyncio.sleep(2.0)
        await asyncio.to_thread(stack.terminate, "postgres")
        down = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself
        await asyncio.to_thread(stack.restart, "postgres")
        back = time.monotonic()
        await asyncio.sleep(5.0)
        card_tally, transfer_tally = await asyncio.gather(cards.stop(), transfers.stop())
    stopped = time.monotonic()
    told_confirmed = card_tally.confirmed + transfer_tally.confirmed
    told_in_progress = transfer_tally.in_progress
    _print_load("cards", card_tally, down)
    _print_load("bank transfers", transfer_tally, down)

    assert card_tally.unfinished == [] and transfer_tally.unfinished == [], "flows that never got an answer"
    assert card_tally.confirmed, "the card load confirmed nothing"
    assert told_in_progress, "no bank transfer was under way"
    assert len(set(told_confirmed + told_in_progress)) == len(told_confirmed) + len(told_in_progress)

    # At rest: every bank transfer has come to its end through JetStream and orders' consumer
    # (settled: CONFIRMED; or, settling after its payment term, EXPIRED and refunded, which I5
    # checks), and the confirmed orders are those the buyers were told are or may be confirmed.
    told = {*told_confirmed, *told_in_progress}

    async def state() -> tuple[set[str], set[str], list[str]]:
        statuses = await _statuses(stack.database_url, event_id)
        confirmed = {order_id for order_id, status in statuses.items() if status == "CONFIRMED"}
        waiting = {
            order_id for order_id in told_in_progress if statuses.get(order_id) == "PAYMENT_IN_PROGRESS"
        }
        return confirmed, waiting, await violations(stack.database_url, [event_id])

    async def at_rest() -> bool:
        confirmed, waiting, broken = await state()
        return set(told_confirmed) <= confirmed <= told and not waiting and not broken

    with contextlib.suppress(AssertionError):
        await eventually(at_rest, 90)
    rest_after = time.monotonic() - stopped
    confirmed, waiting, broken = await state()
    assert set(told_confirmed) <= confirmed, (
        f"told confirmed, not CONFIRMED: {sorted(set(told_confirmed) - confirmed)[:5]}"
    )
    assert confirmed <= told, f"CONFIRMED, never told: {sorted(confirmed - told)[:5]}"
    assert not waiting, f"bank transfers never settled: {sorted(waiting)[:5]}"
    assert broken == []
    settled = confirmed & set(told_in_progress)
    assert settled, "no bank transfer was confirmed by its settlement"

    dead_metrics = {
        service: await metric_total(stack, service, "jetstream_dead_letters_total", consumer=service)
        for service in CONSUMERS
    }
    dead_rows = await _dead_letter_rows(stack.database_url)
    waited = _retried_in_place_since(stack, sizes)
    print(
        f"postgres away {back - down:.1f} s (kept down {OUTAGE_SECONDS:.0f} s); "
        f"{card_tally.requests + transfer_tally.requests} requests, "
        f"{card_tally.failed + transfer_tally.failed} failed, {len(told_confirmed)} confirmed at once, "
        f"{len(settled)} of {len(told_in_progress)} bank transfers confirmed by settlement (the rest "
        f"settled after their payment term: expired, refunded); at rest {rest_after:.1f} s after "
        f"the load stopped; dead letters: metrics {dead_metrics}, rows {dead_rows}; "
        f"failures waited out in place: {waited}"
    )
    assert set(CONSUMERS) <= set(dead_rows), f"a consumer without its dead_letters table: {dead_rows}"
    assert all(count == 0 for count in dead_metrics.values()), dead_metrics
    assert all(count == 0 for count in dead_rows.values()), dead_rows


def _print_load(what: str, tally: Tally, fault_at: float) -> None:
    print(f"\n{what}: {tally.summary(fault_at)}, {len(tally.in_progress)} told PAYMENT_IN_PROGRESS")

"""One process at a time taken away in the middle of a purchase load: each kind of service killed
(SIGKILL at a random moment, then restarted), an inventory replica stopped (SIGTERM), Postgres and
Envoy restarted. After each: I1-I5 hold, every order the buyers were told is confirmed is confirmed,
with one approved charge and one confirmation, and the numbers are printed."""

from __future__ import annotations

import asyncio
import os
import random
import time

import httpx
import psycopg
import pytest

from stack import Stack
from stack.invariants import violations
from tests.e2e.shop import eventually, new_event, new_user
from tests.faults.purchase_load import PurchaseLoad, Tally

# A random moment, but a reproducible one: the seed is printed, and FAULT_SEED replays it.
SEED = int(os.environ.get("FAULT_SEED", random.randrange(1 << 30)))
# The route timeout on Envoy's public listener: no call may take longer (plus scheduling slack).
ROUTE_TIMEOUT = 15.0


async def _shop(rest: httpx.AsyncClient) -> tuple[str, list[str]]:
    """A big event (nothing sells out) and four buyers."""
    return await new_event(rest, 100_000), [await new_user(rest) for _ in range(4)]


async def _confirmed_orders(database_url: str, event_id: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        rows = await (
            await conn.execute(
                "SELECT id FROM orders.orders WHERE event_id = %s AND status = 'CONFIRMED'", (event_id,)
            )
        ).fetchall()
    return {r[0] for r in rows}


async def _comes_to_rest(stack: Stack, event_id: str, tally: Tally) -> None:
    """Every flow finished, the database agrees with what the buyers were told, and I1-I5 hold
    (I2 includes one approved charge per confirmed order; I3 one confirmation each)."""
    assert tally.unfinished == [], f"flows that never got an answer: {tally.unfinished}"
    assert tally.confirmed, "the load confirmed nothing"
    assert len(set(tally.confirmed)) == len(tally.confirmed)
    assert await _confirmed_orders(stack.database_url, event_id) == set(tally.confirmed)
    started = time.monotonic()
    # Shown when the mesh is not yet at rest (a hold of an abandoned attempt, a late notification).
    for line in (await violations(stack.database_url, [event_id]))[:5]:
        print(f"not yet at rest: {line}")

    async def invariants_hold() -> bool:
        return await violations(stack.database_url, [event_id]) == []

    await eventually(invariants_hold, 60)
    print(f"at rest, I1-I5 hold, {time.monotonic() - started:.1f} s after the load stopped")
    assert await violations(stack.database_url, [event_id]) == []


def _service_pids(stack: Stack) -> dict[str, int | None]:
    return {name: stack.process(name).pid for name in stack.replicas()}


@pytest.mark.parametrize("victim", ["inventory-2", "orders-1", "payments-1", "notify-1"])
async def test_sigkill_of_a_service_under_load_loses_nothing(stack, rest, victim: str) -> None:
    rng = random.Random(f"{SEED}-{victim}")
    event_id, users = await _shop(rest)
    async with PurchaseLoad(stack.public_url, event_id, users) as load:
        await asyncio.sleep(rng.uniform(0.5, 2.5))
        fault_at = time.monotonic()
        await asyncio.to_thread(stack.kill, victim)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        await asyncio.to_thread(stack.restart, victim)
        back = time.monotonic()
        await asyncio.sleep(2.0)
        tally = await load.stop()
    print(f"\nSIGKILL {victim} (seed {SEED}), back after {back - fault_at:.1f} s: {tally.summary(fault_at)}")
    if victim.startswith("inventory"):
        # Envoy retries the calls the dead replica had on the other one.
        assert tally.failed <= tally.requests // 100, tally.summary()
    assert not [f for f in tally.failures if f.startswith("500")], tally.summary()
    await _comes_to_rest(stack, event_id, tally)


async def test_sigterm_of_an_inventory_replica_under_load_fails_nothing(stack, rest) -> None:
    event_id, users = await _shop(rest)
    victim = stack.replicas("inventory")[-1]
    async with PurchaseLoad(stack.public_url, event_id, users) as load:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(stack.terminate, victim)
        await asyncio.sleep(1.5)
        tally = await load.stop()
    print(f"\nSIGTERM {victim}: {tally.summary()}")
    await asyncio.to_thread(stack.restart, victim)
    assert tally.failed == 0, tally.summary()
    await _comes_to_rest(stack, event_id, tally)


@pytest.mark.parametrize("part", ["postgres", "envoy"])
async def test_restart_of_shared_infrastructure_under_load(stack, rest, part: str) -> None:
    event_id, users = await _shop(rest)
    pids = _service_pids(stack)
    async with PurchaseLoad(stack.public_url, event_id, users) as load:
        await asyncio.sleep(1.5)
        fault_at = time.monotonic()
        await asyncio.to_thread(stack.restart, part)
        back = time.monotonic()
        await asyncio.sleep(5.0)
        tally = await load.stop()
    recovered = tally.first_answer_after(back)
    print(
        f"\nrestart {part}: away {back - fault_at:.1f} s, first purchase step answered "
        f"{recovered if recovered is None else round(recovered, 2)} s after it was back; {tally.summary(fault_at)}"
    )
    # The mesh serves again within seconds, with the same service processes.
    assert recovered is not None and recovered < 5.0, tally.summary()
    assert _service_pids(stack) == pids
    assert all(stack.process(name).running for name in pids)
    # No call hung: each had an answer (success or failure) within its deadline.
    assert tally.slowest < ROUTE_TIMEOUT + 1, tally.summary()
    await _comes_to_rest(stack, event_id, tally)

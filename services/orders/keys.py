"""Idempotency keys for orders' mutations (AIP-155, Stripe's model): a key is claimed before any
work; the answer is stored with the effect; a repeat gets the stored answer, a concurrent repeat
waits for it, and a claim whose process died is taken over with the same resource id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from google.rpc import status_pb2
from loguru import logger
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ticketmesh import context
from ticketmesh.errors import Aborted, ServiceError
from ticketmesh.idempotency import reused

# How long a claim is owned by the process that made it; a claim older than this with no answer
# belongs to a process that died, and a repeat takes it over. Envoy ends every call after 15 s, so
# a claim's owner has given up by then. Taking over early is safe anyway: the work is done again
# with the same resource id, and every effect (reserve, charge) is idempotent by it.
CLAIM_SECONDS = 15
_POLL_SECONDS = 0.05
# A waiting repeat answers REQUEST_IN_PROGRESS this long before its deadline, so that the client
# gets that answer rather than Envoy's timeout.
_ANSWER_MARGIN_SECONDS = 0.5
_RELEASE_RETRY_SECONDS = 0.25
# Releases under way in the background (a task nobody holds may be garbage-collected).
_releasing: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Claim:
    """Ours to do (`replay` and `error` None), or an earlier answer to give again."""

    resource_id: str
    replay: bytes | None = None
    error: status_pb2.Status | None = None


class StoredError(ServiceError):
    """An error answer given again to a repeat, with its original code and details."""

    def __init__(self, status: status_pb2.Status):
        super().__init__(status.message)
        self.status = status
        self.code = next(c for c in grpc.StatusCode if c.value[0] == status.code)

    def to_status(self) -> status_pb2.Status:
        return self.status


async def claim(pool: AsyncConnectionPool, method: str, key: str, fingerprint: str, new_id: str) -> Claim:
    """Claims `key` for `method`, or returns what an earlier request with it answered."""
    while True:
        async with pool.connection() as conn:
            made = await (
                await conn.execute(
                    "INSERT INTO idempotency_keys (method, key, fingerprint, resource_id, state, locked_until)"
                    " VALUES (%s, %s, %s, %s, 'IN_PROGRESS', now() + make_interval(secs => %s))"
                    " ON CONFLICT DO NOTHING RETURNING resource_id",
                    (method, key, fingerprint, new_id, CLAIM_SECONDS),
                )
            ).fetchone()
            if made is not None:
                return Claim(new_id)
            row = await (
                await conn.execute(
                    "SELECT fingerprint, state, resource_id, response, error, locked_until < now()"
                    " FROM idempotency_keys WHERE method = %s AND key = %s",
                    (method, key),
                )
            ).fetchone()
            if row is None:
                continue  # swept between the two statements: claim again
            stored_fingerprint, state, resource_id, response, error, stale = row
            if stored_fingerprint != fingerprint:
                raise reused(key)
            if state == "DONE":
                if error is not None:
                    return Claim(resource_id, error=status_pb2.Status.FromString(error))
                return Claim(resource_id, replay=bytes(response))
            if stale:
                taken = await (
                    await conn.execute(
                        "UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => %s)"
                        " WHERE method = %s AND key = %s AND state = 'IN_PROGRESS' AND locked_until < now()"
                        " RETURNING resource_id",
                        (CLAIM_SECONDS, method, key),
                    )
                ).fetchone()
                if taken is not None:
                    return Claim(resource_id)  # the same resource: its effects are idempotent
        if context.time_left(CLAIM_SECONDS) <= _POLL_SECONDS + _ANSWER_MARGIN_SECONDS:
            raise Aborted("a request with this id is still in progress; retry", reason="REQUEST_IN_PROGRESS")
        await asyncio.sleep(_POLL_SECONDS)


async def finish(conn: AsyncConnection, method: str, key: str, response: bytes) -> None:
    """Stores the answer; call it in the transaction that makes the effect."""
    await conn.execute(
        "UPDATE idempotency_keys SET state = 'DONE', response = %s WHERE method = %s AND key = %s",
        (response, method, key),
    )


async def finish_with_error(conn: AsyncConnection, method: str, key: str, err: ServiceError) -> None:
    """Stores a final error answer (SOLD_OUT, NOT_FOUND, USER_EXISTS): a repeat gets the same
    answer. Call it in the transaction that records what the failure leaves owed, if anything."""
    await conn.execute(
        "UPDATE idempotency_keys SET state = 'DONE', error = %s WHERE method = %s AND key = %s",
        (err.to_status().SerializeToString(), method, key),
    )


async def take_over(conn: AsyncConnection, method: str, key: str) -> bool:
    """Takes a stale claim over (its owner died or gave up), as a repeat would; False if someone
    holds it now or it is finished."""
    taken = await (
        await conn.execute(
            "UPDATE idempotency_keys SET locked_until = now() + make_interval(secs => %s)"
            " WHERE method = %s AND key = %s AND state = 'IN_PROGRESS' AND locked_until < now()"
            " RETURNING key",
            (CLAIM_SECONDS, method, key),
        )
    ).fetchone()
    return taken is not None


async def let_go(pool: AsyncConnectionPool, method: str, key: str) -> None:
    """After a transient failure: a repeat may take the claim over at once (same resource id)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET locked_until = now() WHERE method = %s AND key = %s AND state = 'IN_PROGRESS'",
            (method, key),
        )


def let_go_after(pool: AsyncConnectionPool, method: str, key: str) -> None:
    """let_go after an unexpected failure or a cancelled call (the database or the client went
    away), in the background, so a retry need not wait CLAIM_SECONDS for the claim to go stale."""
    in_background(lambda: let_go(pool, method, key), f"let go of request {key}")


def in_background(work: Callable[[], Awaitable[None]], what: str) -> None:
    """Runs `work` in the background, without the call's deadline, trying again until the database
    answers (for at most CLAIM_SECONDS: after that the sweeper finds what is left)."""

    async def attempt() -> None:
        context.deadline.set(None)  # this task's own copy of the context
        give_up = asyncio.get_running_loop().time() + CLAIM_SECONDS
        while True:
            try:
                await work()
                return
            except Exception as exc:
                if asyncio.get_running_loop().time() > give_up:
                    logger.warning("could not {}: {}", what, exc)
                    return
            await asyncio.sleep(_RELEASE_RETRY_SECONDS)

    task = asyncio.create_task(attempt())
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)

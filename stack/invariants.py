"""Checks the invariants I1-I5 (docs/ARCHITECTURE.md) on a live stack, reading every service's schema. A checker,
not a service: it alone may read across schemas. `python -m stack.invariants DATABASE_URL` prints
what is wrong and exits non-zero; tests call `violations()` after a scenario has come to rest."""

from __future__ import annotations

import asyncio
import sys

import psycopg

# Each query returns one row per violation: a description.
_CHECKS: dict[str, str] = {
    "I1 stock out of balance": """
        SELECT format('%%s/%%s: available %%s + held %%s + sold %%s != capacity %%s',
                      event_id, name, available, held, sold, capacity)
          FROM inventory.ticket_types
         WHERE (available + held + sold != capacity OR available < 0) AND (%(events)s::text[] IS NULL OR event_id = ANY(%(events)s))""",
    "I1 held != unpaid orders": """
        SELECT format('%%s/%%s: held %%s, unpaid orders hold %%s', t.event_id, t.name, t.held, coalesce(o.q, 0))
          FROM inventory.ticket_types t
          LEFT JOIN (SELECT event_id, ticket_type, sum(quantity) AS q FROM orders.orders
                      WHERE status IN ('PENDING_PAYMENT', 'PAYMENT_IN_PROGRESS')
                      GROUP BY 1, 2) o ON o.event_id = t.event_id AND o.ticket_type = t.name
         WHERE t.held != coalesce(o.q, 0) AND (%(events)s::text[] IS NULL OR t.event_id = ANY(%(events)s))""",
    "I1 sold != confirmed orders": """
        SELECT format('%%s/%%s: sold %%s, confirmed orders %%s', t.event_id, t.name, t.sold, coalesce(o.q, 0))
          FROM inventory.ticket_types t
          LEFT JOIN (SELECT event_id, ticket_type, sum(quantity) AS q FROM orders.orders
                      WHERE status = 'CONFIRMED' GROUP BY 1, 2) o
            ON o.event_id = t.event_id AND o.ticket_type = t.name
         WHERE t.sold != coalesce(o.q, 0) AND (%(events)s::text[] IS NULL OR t.event_id = ANY(%(events)s))""",
    "I2 more than one live charge for an order": """
        SELECT format('order %%s has %%s approved/refunded charges', order_id, count(*))
          FROM payments.charges c WHERE status IN ('APPROVED', 'REFUNDED')
           AND (%(events)s::text[] IS NULL
                OR EXISTS (SELECT 1 FROM orders.orders o WHERE o.id = c.order_id AND o.event_id = ANY(%(events)s)))
         GROUP BY order_id HAVING count(*) > 1""",
    "I2 confirmed order without exactly one approved charge": """
        SELECT format('order %%s is CONFIRMED with %%s approved charges', o.id, count(c.id))
          FROM orders.orders o
          LEFT JOIN payments.charges c ON c.order_id = o.id AND c.status = 'APPROVED'
         WHERE o.status = 'CONFIRMED' AND (%(events)s::text[] IS NULL OR o.event_id = ANY(%(events)s))
         GROUP BY o.id, o.amount_units, o.amount_nanos
        HAVING count(c.id) != CASE WHEN o.amount_units = 0 AND o.amount_nanos = 0 THEN 0 ELSE 1 END""",
    "I2 confirmed order paid by another charge": """
        SELECT format('order %%s is CONFIRMED by charge %%s, but its approved charge is %%s', o.id, o.charge_id, c.id)
          FROM orders.orders o JOIN payments.charges c ON c.order_id = o.id AND c.status = 'APPROVED'
         WHERE o.status = 'CONFIRMED' AND c.id != o.charge_id
           AND (%(events)s::text[] IS NULL OR o.event_id = ANY(%(events)s))""",
    # The money check: every approved charge belongs to a confirmed order or has been refunded.
    "I5 money taken without a confirmed order": """
        SELECT format('charge %%s APPROVED for order %%s which is %%s', c.id, c.order_id, coalesce(o.status, 'missing'))
          FROM payments.charges c LEFT JOIN orders.orders o ON o.id = c.order_id
         WHERE c.status = 'APPROVED' AND coalesce(o.status, '') != 'CONFIRMED'
           AND (%(events)s::text[] IS NULL OR o.event_id = ANY(%(events)s))""",
    "I5 owed work parked": """
        SELECT format('%%s for order %%s parked after %%s attempts: %%s', w.kind, w.order_id, w.attempts, w.last_error)
          FROM orders.owed_work w LEFT JOIN orders.orders o ON o.id = w.order_id
         WHERE w.parked_time IS NOT NULL
           AND (%(events)s::text[] IS NULL OR o.event_id = ANY(%(events)s))""",
    "I3 confirmed order without exactly one confirmation": """
        SELECT format('order %%s has %%s confirmation notifications', o.id, count(n.id))
          FROM orders.orders o
          LEFT JOIN notify.notifications n ON n.order_id = o.id AND n.kind = 'ORDER_CONFIRMED'
         WHERE o.status = 'CONFIRMED' AND (%(events)s::text[] IS NULL OR o.event_id = ANY(%(events)s))
         GROUP BY o.id HAVING count(n.id) != 1""",
    "I4 hold past its end": """
        SELECT format('order %%s still %%s, hold ended %%s', id, status, expire_time)
          FROM orders.orders
         WHERE status = 'PENDING_PAYMENT' AND expire_time < now() - interval '5 seconds' AND (%(events)s::text[] IS NULL OR event_id = ANY(%(events)s))""",
    "I4 stock not given back": """
        SELECT format('order %%s is %%s but its stock was not released', id, status)
          FROM orders.orders WHERE status IN ('CANCELLED', 'EXPIRED') AND NOT stock_released AND (%(events)s::text[] IS NULL OR event_id = ANY(%(events)s))""",
}


async def _existing_schemas(conn: psycopg.AsyncConnection) -> set[str]:
    rows = await (await conn.execute("SELECT nspname FROM pg_namespace")).fetchall()
    return {r[0] for r in rows}


async def violations(database_url: str, events: list[str] | None = None) -> list[str]:
    """Every broken invariant, as lines of text; empty when all hold. `events` limits the check to
    those events (tests share one stack). Checks that need a schema not there yet are skipped."""
    problems: list[str] = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        schemas = await _existing_schemas(conn)
        for name, sql in _CHECKS.items():
            needed = {s for s in ("inventory", "orders", "payments", "notify") if f"{s}." in sql}
            if not needed <= schemas:
                continue
            rows = await (await conn.execute(sql, {"events": events})).fetchall()
            problems.extend(f"{name}: {row[0]}" for row in rows)
    return problems


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m stack.invariants DATABASE_URL")
    found = asyncio.run(violations(sys.argv[1]))
    for line in found:
        print(line)
    print("invariants I1-I5 hold" if not found else f"{len(found)} violations")
    raise SystemExit(1 if found else 0)


if __name__ == "__main__":
    main()

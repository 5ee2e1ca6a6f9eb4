"""Owed work as a queue with a backoff and a parking place, the key of the charge under way, and
the books' reconciliation cursor.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        -- Work a failure or a lost reply left owed: stock to release, a charge to refund, a payment
        -- whose outcome is unknown to check with payments. Taken oldest due first; a failure pushes
        -- the row back (a backoff per row), and after a bounded number of failures it is parked
        -- with its reason, so work that cannot finish never blocks work that can.
        CREATE TABLE owed_work (
            id bigserial PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('RELEASE_STOCK', 'REFUND_CHARGE', 'CHECK_PAYMENT')),
            order_id text NOT NULL,
            -- REFUND_CHARGE: the charge to refund. CHECK_PAYMENT: the key the charge was asked with.
            charge_ref text NOT NULL DEFAULT '',
            attempts int NOT NULL DEFAULT 0,
            next_attempt_time timestamptz NOT NULL DEFAULT now(),
            last_error text NOT NULL DEFAULT '',
            parked_time timestamptz,
            create_time timestamptz NOT NULL DEFAULT now(),
            UNIQUE (kind, order_id, charge_ref)
        );
        CREATE INDEX owed_work_due ON owed_work (next_attempt_time) WHERE parked_time IS NULL;

        INSERT INTO owed_work (kind, order_id)
            SELECT 'RELEASE_STOCK', id FROM orders
             WHERE NOT stock_released AND status IN ('CANCELLED', 'EXPIRED');
        INSERT INTO owed_work (kind, order_id, charge_ref)
            SELECT 'REFUND_CHARGE', id, charge_id FROM orders WHERE refund_due AND charge_id != '';

        -- The gateway's key for the payment under way: order id, pay key and the attempt (an
        -- attempt whose outcome was unknown and was voided is never charged, so the next one under
        -- the same pay key needs a key of its own).
        ALTER TABLE orders ADD COLUMN charge_key text NOT NULL DEFAULT '';
        ALTER TABLE orders ADD COLUMN pay_attempts int NOT NULL DEFAULT 0;
        UPDATE orders SET charge_key = id || ':0:' || pay_key WHERE pay_key != '';

        -- How far the books' reconciliation has read payments' charges (by update time, then id).
        CREATE TABLE books_cursor (
            id boolean PRIMARY KEY DEFAULT true CHECK (id),
            update_time timestamptz NOT NULL DEFAULT 'epoch',
            charge_id text NOT NULL DEFAULT ''
        );
        INSERT INTO books_cursor (id) VALUES (true);
        """
    )

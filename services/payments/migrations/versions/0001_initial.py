"""Charges, and the gateway's one-row failure-injection mode.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE charges (
            id text PRIMARY KEY,
            -- The idempotency key: the same key always means the same charge.
            key text NOT NULL UNIQUE,
            order_id text NOT NULL,
            amount_currency text NOT NULL,
            amount_units bigint NOT NULL,
            amount_nanos int NOT NULL,
            method text NOT NULL CHECK (method IN ('CARD', 'BANK_TRANSFER')),
            status text NOT NULL CHECK (status IN ('APPROVED', 'DECLINED', 'PENDING', 'REFUNDED')),
            decline_reason text NOT NULL DEFAULT '',
            create_time timestamptz NOT NULL DEFAULT now(),
            update_time timestamptz NOT NULL DEFAULT now()
        );
        -- I2 lives in the schema: an order has at most one charge that took (or may take) money.
        -- Declined charges are left out, so a buyer may try again with a new key.
        CREATE UNIQUE INDEX charges_one_live_per_order ON charges (order_id)
            WHERE status IN ('APPROVED', 'PENDING', 'REFUNDED');

        -- One row, read by every payments process, so SetMode on one applies to all.
        CREATE TABLE mode (
            id boolean PRIMARY KEY DEFAULT true CHECK (id),
            failure_rate double precision NOT NULL DEFAULT 0 CHECK (failure_rate BETWEEN 0 AND 1),
            decline_rate double precision NOT NULL DEFAULT 0 CHECK (decline_rate BETWEEN 0 AND 1),
            latency_ms int NOT NULL DEFAULT 0 CHECK (latency_ms >= 0),
            settle_delay_ms int NOT NULL DEFAULT 2000 CHECK (settle_delay_ms > 0)
        );
        INSERT INTO mode (id) VALUES (true);
        """
    )

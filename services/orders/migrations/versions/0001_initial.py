"""Users, orders, idempotency keys and the outbox.

Revision ID: 0001
"""

from alembic import op

from ticketmesh.outbox import TABLE_DDL

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id text PRIMARY KEY,
            email text NOT NULL,
            name text NOT NULL,
            create_time timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX users_email ON users (lower(email));

        CREATE TABLE orders (
            id text PRIMARY KEY,
            user_id text NOT NULL REFERENCES users (id),
            event_id text NOT NULL,
            ticket_type text NOT NULL,
            quantity int NOT NULL CHECK (quantity > 0),
            status text NOT NULL CHECK (status IN
                ('PENDING_PAYMENT', 'PAYMENT_IN_PROGRESS', 'CONFIRMED', 'CANCELLED', 'EXPIRED')),
            strategy text NOT NULL,
            amount_currency text NOT NULL,
            amount_units bigint NOT NULL,
            amount_nanos int NOT NULL,
            expire_time timestamptz NOT NULL,
            payment_method text NOT NULL DEFAULT '',
            -- The idempotency key of the payment under way or done; the charge's key derives from it.
            pay_key text NOT NULL DEFAULT '',
            charge_id text NOT NULL DEFAULT '',
            refunded boolean NOT NULL DEFAULT false,
            -- Work owed after a cancel or expiry, retried by the sweeper until done.
            stock_released boolean NOT NULL DEFAULT false,
            refund_due boolean NOT NULL DEFAULT false,
            create_time timestamptz NOT NULL DEFAULT now(),
            update_time timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX orders_unpaid ON orders (expire_time)
            WHERE status IN ('PENDING_PAYMENT', 'PAYMENT_IN_PROGRESS');
        CREATE INDEX orders_owed ON orders (id) WHERE (NOT stock_released AND status IN ('CANCELLED', 'EXPIRED'))
            OR refund_due;
        CREATE INDEX orders_by_user ON orders (user_id, create_time DESC, id DESC);
        CREATE INDEX orders_by_event ON orders (event_id, create_time DESC, id DESC);

        -- AIP-155: claimed before any work; the stored answer is replayed to a repeat.
        CREATE TABLE idempotency_keys (
            method text NOT NULL,
            key text NOT NULL,
            fingerprint text NOT NULL,
            resource_id text NOT NULL,
            state text NOT NULL CHECK (state IN ('IN_PROGRESS', 'DONE')),
            response bytea,
            error bytea,
            locked_until timestamptz NOT NULL,
            create_time timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (method, key)
        );
        CREATE INDEX idempotency_keys_age ON idempotency_keys (create_time);
        """
    )
    op.execute(TABLE_DDL)

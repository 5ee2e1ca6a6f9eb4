"""Events, ticket types with their stock counters, and reservations.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE events (
            id text PRIMARY KEY,
            seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            display_name text NOT NULL,
            venue text NOT NULL DEFAULT '',
            start_time timestamptz,
            create_time timestamptz NOT NULL DEFAULT now(),
            -- AIP-155: a retried CreateEvent finds its event by request id.
            request_id text UNIQUE,
            request_fingerprint text
        );

        -- I1 lives in the schema: stock can never go negative or out of balance.
        CREATE TABLE ticket_types (
            event_id text NOT NULL REFERENCES events (id),
            name text NOT NULL,
            position int NOT NULL,
            price_currency text NOT NULL,
            price_units bigint NOT NULL,
            price_nanos int NOT NULL,
            capacity int NOT NULL CHECK (capacity > 0),
            available int NOT NULL CHECK (available >= 0),
            held int NOT NULL DEFAULT 0 CHECK (held >= 0),
            sold int NOT NULL DEFAULT 0 CHECK (sold >= 0),
            -- Bumped on every change: the OPTIMISTIC strategy's compare value.
            version bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (event_id, name),
            CHECK (available + held + sold = capacity)
        );

        CREATE TABLE reservations (
            id text PRIMARY KEY,
            event_id text NOT NULL,
            ticket_type text NOT NULL,
            quantity int NOT NULL CHECK (quantity >= 0),
            state text NOT NULL CHECK (state IN ('HELD', 'RELEASED', 'SOLD')),
            strategy text NOT NULL,
            price_currency text NOT NULL DEFAULT '',
            price_units bigint NOT NULL DEFAULT 0,
            price_nanos int NOT NULL DEFAULT 0,
            create_time timestamptz NOT NULL DEFAULT now(),
            update_time timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX reservations_by_ticket_type ON reservations (event_id, ticket_type, state);
        """
    )

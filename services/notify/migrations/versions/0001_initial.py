"""Notifications, one per order event, and the dead letters the consumer gave up on.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        -- I3 lives in the schema: the id is the order event's id, so an event redelivered or
        -- published twice can never make a second notification.
        CREATE TABLE notifications (
            id text PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('ORDER_CONFIRMED', 'ORDER_CANCELLED', 'ORDER_EXPIRED')),
            user_id text NOT NULL,
            order_id text NOT NULL,
            recipient text NOT NULL,
            subject text NOT NULL,
            body text NOT NULL,
            create_time timestamptz NOT NULL DEFAULT now()
        );
        -- ListNotifications, newest first, by user or by order; id breaks ties for the page token.
        CREATE INDEX notifications_by_user ON notifications (user_id, create_time DESC, id DESC);
        CREATE INDEX notifications_by_order ON notifications (order_id, create_time DESC, id DESC);

        -- Messages that kept failing: kept for people to look at, no longer retried.
        CREATE TABLE dead_letters (
            id serial PRIMARY KEY,
            subject text NOT NULL,
            message_id text NOT NULL DEFAULT '',
            payload bytea NOT NULL,
            error text NOT NULL,
            create_time timestamptz NOT NULL DEFAULT now()
        );
        """
    )

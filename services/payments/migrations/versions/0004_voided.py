"""VOIDED charges (a key given up before it took money) and the index ListCharges pages by.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute(
        """
        -- charges_status_check is the name Postgres gave 0001's column CHECK.
        ALTER TABLE charges DROP CONSTRAINT charges_status_check;
        ALTER TABLE charges ADD CONSTRAINT charges_status_check
            CHECK (status IN ('APPROVED', 'DECLINED', 'PENDING', 'REFUNDED', 'VOIDED'));
        -- A void does not know what was asked: it records no method and no amount, and every
        -- other charge records both. charges_one_live_per_order leaves VOIDED out, so a void
        -- never holds its order.
        ALTER TABLE charges ALTER COLUMN method DROP NOT NULL;
        ALTER TABLE charges ADD CONSTRAINT charges_voided_takes_nothing CHECK (
            (status = 'VOIDED') = (method IS NULL)
            AND (status <> 'VOIDED' OR (amount_currency = '' AND amount_units = 0 AND amount_nanos = 0))
        );
        -- ListCharges walks charges in order of last change.
        CREATE INDEX charges_by_change ON charges (update_time, id);
        """
    )

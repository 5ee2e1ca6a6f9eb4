"""The outbox (ChargeSettled events), and when each bank transfer is due to settle.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from ticketmesh.outbox import TABLE_DDL

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(TABLE_DDL)
    op.execute(
        """
        -- Set when a BANK_TRANSFER charge is created (now + the mode's settle_delay_ms); NULL for cards.
        ALTER TABLE charges ADD COLUMN settle_after timestamptz;
        -- Bank transfers left PENDING before this column existed settle as if created under the mode.
        UPDATE charges SET settle_after = create_time + make_interval(secs => mode.settle_delay_ms / 1000.0)
            FROM mode WHERE charges.status = 'PENDING' AND charges.method = 'BANK_TRANSFER';
        -- What the settler scans: only the charges still waiting.
        CREATE INDEX charges_due ON charges (settle_after) WHERE status = 'PENDING';
        """
    )

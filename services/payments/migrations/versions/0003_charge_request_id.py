"""The request id of the call that created each charge, so the ChargeSettled event a bank transfer
publishes later carries it (x-request-id header) and the buyer's request can be followed to the end.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE charges ADD COLUMN request_id text NOT NULL DEFAULT ''")

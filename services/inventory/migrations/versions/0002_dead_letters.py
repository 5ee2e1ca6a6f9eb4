"""Dead letters: order events the consumer gave up on, stored rather than only logged.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from ticketmesh.dead_letters import TABLE_DDL

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(TABLE_DDL)

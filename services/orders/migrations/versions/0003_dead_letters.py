"""Dead letters: payment events the consumer gave up on, stored rather than only logged.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from ticketmesh.dead_letters import TABLE_DDL

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute(TABLE_DDL)

"""Dead letters take the shape every consumer shares (ticketmesh.dead_letters): the consumer's name.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE dead_letters ADD COLUMN consumer text NOT NULL DEFAULT 'notify';
        ALTER TABLE dead_letters ALTER COLUMN consumer DROP DEFAULT;
        ALTER TABLE dead_letters ALTER COLUMN id TYPE bigint;
        ALTER SEQUENCE dead_letters_id_seq AS bigint;
        """
    )

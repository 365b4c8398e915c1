"""Training images keep a fingerprint for the copy check and the name of the captioner that wrote their caption.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("captioned_by", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_images", schema=None) as batch_op:
        batch_op.drop_column("captioned_by")
        batch_op.drop_column("fingerprint")

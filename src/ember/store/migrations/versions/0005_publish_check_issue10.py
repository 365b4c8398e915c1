"""Each custom model version keeps the check made after its training (ember.engine.checks), which publishing
reads.

Revision ID: 0005_issue10
Revises: 0004_issue17
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_issue10"
down_revision = "0004_issue17"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("custom_model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("publish_check", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("custom_model_versions", schema=None) as batch_op:
        batch_op.drop_column("publish_check")

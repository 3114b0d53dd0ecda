"""openNDS FAS level and faskey per NAS

Revision ID: 0015
Revises: 0009
Create Date: 2026-12-02 17:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fas_level', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('faskey', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.drop_column('faskey')
        batch_op.drop_column('fas_level')

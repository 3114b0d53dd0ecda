"""city identity: settings, logo and privacy notice versions

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-02 17:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('city_settings',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('city_logo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('privacy_notices',
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=False),
    sa.Column('fields', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('version')
    )
    with op.batch_alter_table('privacy_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_privacy_notices_published_at'), ['published_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('privacy_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_privacy_notices_published_at'))
    op.drop_table('privacy_notices')
    op.drop_table('city_logo')
    op.drop_table('city_settings')

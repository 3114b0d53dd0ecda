"""NAS-Identifier alias and octet direction per NAS; session generations for reused Acct-Session-Ids

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# SQLite keeps 0001's unique constraint unnamed; this name lets the batch copy drop it.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s"}


def _old_unique() -> str:
    """The name 0001's unnamed UNIQUE (nas_id, acct_session_id) got from the database."""
    if op.get_bind().dialect.name == "postgresql":
        return "sessions_nas_id_acct_session_id_key"
    return "uq_sessions_nas_id_acct_session_id"


def upgrade() -> None:
    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nas_identifier', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('octets_direction', sa.String(length=20), server_default='input-is-upload',
                                      nullable=False))
        batch_op.create_unique_constraint('uq_nas_nas_identifier', ['nas_identifier'])
    # CoovaChilli counts what it sends to the client as Acct-Input-Octets unless HS_SWAPOCTETS=on.
    op.execute("UPDATE nas SET octets_direction = 'input-is-download' WHERE vendor = 'coova'")

    with op.batch_alter_table('sessions', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('start_key', sa.String(length=32), nullable=True))
        batch_op.drop_constraint(_old_unique(), type_='unique')
        batch_op.create_unique_constraint('uq_sessions_nas_session_generation',
                                          ['nas_id', 'acct_session_id', 'generation'])
        batch_op.create_index('ix_sessions_acct_session_id', ['acct_session_id'], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM sessions WHERE generation > 0")
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_sessions_acct_session_id')
        batch_op.drop_constraint('uq_sessions_nas_session_generation', type_='unique')
        batch_op.create_unique_constraint(_old_unique(), ['nas_id', 'acct_session_id'])
        batch_op.drop_column('start_key')
        batch_op.drop_column('generation')

    with op.batch_alter_table('nas', schema=None) as batch_op:
        batch_op.drop_constraint('uq_nas_nas_identifier', type_='unique')
        batch_op.drop_column('octets_direction')
        batch_op.drop_column('nas_identifier')

"""Data subjects' keys: messages name the key their personal fields are under, and the
database remembers how far it has replayed the key store's erasure ledger.

``messages.subject_key`` is the random id of the subject's key in the key store (NULL for
messages stored before subject keys, which stay under the tenant's data key);
``messages.from_index`` the blind index of an inbound message's sender, its subject (an
outbound message's is its recipient's, ``to_index``), indexed for inbound messages only.
``erasure_replay`` is one row: the last ledger entry applied to this database, so a
database restored from an older backup replays what came after it.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from tidings.storage.sqltypes import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("subject_key", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("from_index", sa.String(length=64), nullable=True))
    op.create_index("ix_messages_tenant_id_subject_key", "messages",
                    ["tenant_id", "subject_key"], unique=False)
    op.create_index("ix_messages_tenant_id_from_index", "messages", ["tenant_id", "from_index"],
                    unique=False, sqlite_where=sa.text("from_index IS NOT NULL"),
                    postgresql_where=sa.text("from_index IS NOT NULL"))
    op.create_table(
        "erasure_replay",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("applied_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_replay")),
    )
    # Its one row from the start, so that processes starting together only ever update it.
    replay = sa.table("erasure_replay", sa.column("id", sa.Integer()),
                      sa.column("applied_seq", sa.BigInteger()),
                      sa.column("updated_at", UTCDateTime(timezone=True)))
    op.bulk_insert(replay, [{"id": 1, "applied_seq": 0, "updated_at": datetime.now(UTC)}])

def downgrade() -> None:
    op.drop_table("erasure_replay")
    op.drop_index("ix_messages_tenant_id_from_index", table_name="messages")
    op.drop_index("ix_messages_tenant_id_subject_key", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("from_index")
        batch.drop_column("subject_key")

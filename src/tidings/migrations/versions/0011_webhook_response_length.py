"""Webhook attempts keep the length of the endpoint's answer, not its first 200
characters: webhook_attempts.response_excerpt is emptied and dropped,
webhook_attempts.response_bytes added.

An answer may carry personal data, and the webhook tables hold none. The excerpts
are overwritten before the column goes: dropping a column alone leaves its values
in PostgreSQL's rows, and SQLite's copy of the table leaves them in free pages
(``secure_delete`` zeroes those). PostgreSQL's old row versions go with the next
(auto)vacuum.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    secure_delete = None
    if bind.dialect.name == "sqlite":
        secure_delete = bind.exec_driver_sql("PRAGMA secure_delete").scalar()
        op.execute("PRAGMA secure_delete = ON")
    op.execute("UPDATE webhook_attempts SET response_excerpt = ''")
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_column("response_excerpt")
        batch_op.add_column(sa.Column("response_bytes", sa.Integer(), nullable=True))
    if secure_delete is not None:
        op.execute(f"PRAGMA secure_delete = {int(secure_delete)}")


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_column("response_bytes")
        batch_op.add_column(sa.Column("response_excerpt", sa.String(length=200),
                                      nullable=False, server_default=""))

"""witnessing: the cosignatures witnesses send back for this node's checkpoints

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:12:41.508113

Written to match ``gsomia.ledger.tables.LedgerCosignatureRow`` (checked by ``alembic check``
in the test suite): instants as DateTime(timezone=True), the store's UTCDateTime.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_cosignatures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("witness", sa.String(length=8), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_cosignatures")),
        sa.UniqueConstraint(
            "witness", "size", "root_hash", name=op.f("uq_ledger_cosignatures_witness")
        ),
    )


def downgrade() -> None:
    op.drop_table("ledger_cosignatures")

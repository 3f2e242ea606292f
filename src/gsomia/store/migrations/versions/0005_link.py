"""link: the journal of track updates each node accepted, and the peers' acknowledged positions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:20:00

Written to match gsomia.store.link (checked by `alembic check` in the tests).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_updates",
        sa.Column("pos", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("track_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("originator", sa.String(length=16), nullable=False),
        sa.Column("sender", sa.String(length=16), nullable=False),
        sa.Column("instrument", sa.String(length=128), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("level_rank", sa.Integer(), nullable=False),
        sa.Column("topics", sa.Text(), nullable=False),
        sa.Column("compartments", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sensor", sa.Text(), nullable=True),
        sa.Column("hops", sa.Text(), nullable=False),
        sa.Column("forward", sa.Text(), nullable=False),
        sa.Column("consents", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pos", name=op.f("pk_link_updates")),
        sa.UniqueConstraint("track_id", "seq", name="uq_link_updates_track_seq"),
    )
    with op.batch_alter_table("link_updates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_updates_track_id"), ["track_id"], unique=False)
    op.create_table(
        "link_cursors",
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("acked_pos", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("peer", name=op.f("pk_link_cursors")),
    )


def downgrade() -> None:
    op.drop_table("link_cursors")
    with op.batch_alter_table("link_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_updates_track_id"))
    op.drop_table("link_updates")

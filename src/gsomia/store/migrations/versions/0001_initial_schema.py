"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 08:21:31.913168
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "node_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_node_meta")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("clearance", sa.String(length=64), nullable=True),
        sa.Column("need_to_know", sa.JSON(), nullable=False),
        sa.Column("compartments", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("originator", sa.String(length=8), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("classification", sa.String(length=64), nullable=False),
        sa.Column("level_rank", sa.Integer(), nullable=False),
        sa.Column("label", sa.JSON(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_item_id", sa.String(length=36), nullable=True),
        sa.Column("derivation", sa.String(length=16), nullable=True),
        sa.Column("received_from", sa.String(length=8), nullable=True),
        sa.Column("received_under", sa.String(length=64), nullable=True),
        sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disposed_by", sa.String(length=36), nullable=True),
        sa.Column("disposition_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_items_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["disposed_by"], ["users.id"], name=op.f("fk_items_disposed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["source_item_id"], ["items.id"], name=op.f("fk_items_source_item_id_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index("ix_items_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_items_originator"), ["originator"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_tokens")),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "access_register",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.String(length=36), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_access_register_item_id_items")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_access_register_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_register")),
    )
    with op.batch_alter_table("access_register", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_register_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_register_user_id"), ["user_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("item_id", sa.String(length=36), nullable=True),
        sa.Column("originator", sa.String(length=8), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=36), nullable=True),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_consents_item_id_items")),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["users.id"], name=op.f("fk_consents_recorded_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_item_id"), ["item_id"], unique=False)

    op.create_table(
        "item_compartments",
        sa.Column("item_id", sa.String(length=36), nullable=False),
        sa.Column("compartment", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_compartments_item_id_items")
        ),
        sa.PrimaryKeyConstraint("item_id", "compartment", name=op.f("pk_item_compartments")),
    )
    op.create_table(
        "item_topics",
        sa.Column("item_id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_topics_item_id_items")
        ),
        sa.PrimaryKeyConstraint("item_id", "topic", name=op.f("pk_item_topics")),
    )
    op.create_table(
        "label_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("old_label", sa.JSON(), nullable=False),
        sa.Column("new_label", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by"], ["users.id"], name=op.f("fk_label_changes_changed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_label_changes_item_id_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_changes")),
    )
    with op.batch_alter_table("label_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_changes_item_id"), ["item_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("label_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_changes_item_id"))

    op.drop_table("label_changes")
    op.drop_table("item_topics")
    op.drop_table("item_compartments")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_item_id"))

    op.drop_table("consents")
    with op.batch_alter_table("access_register", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_register_user_id"))
        batch_op.drop_index(batch_op.f("ix_access_register_item_id"))

    op.drop_table("access_register")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_user_id"))

    op.drop_table("tokens")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_originator"))
        batch_op.drop_index("ix_items_created_at_id")

    op.drop_table("items")
    op.drop_table("users")
    op.drop_table("node_meta")

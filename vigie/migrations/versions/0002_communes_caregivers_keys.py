"""Communes, caregivers, gateways, API keys, ack links, audit log, home sensors.

Everything added between the baseline and migrations:

- ``households.commune`` (API scoping; rows that exist get ``'default'``, the model's default) and
  ``meters.gateway`` / ``meters.topic_name`` (the broker credential and topic a meter publishes with);
- new tables ``household_caregivers``, ``api_keys``, ``ack_links_used``, ``audit_log``, ``home_sensors``.

Vigie versions between the baseline and this revision made their tables with ``create_all``,
which creates missing tables but never adds a column: such a database, stamped at the baseline,
may already hold some of this. So every step here runs only when its table, column or index is
missing, and the result is the same schema whatever the starting point.

Revision ID: 0002_communes_caregivers_keys
Revises: 0001_baseline
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_communes_caregivers_keys"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def _has_table(table: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(table)


def _has_column(table: str, column: str) -> bool:
    return any(c["name"] == column for c in sa.inspect(op.get_bind()).get_columns(table))


def _add_indexes(table: str, *columns: str) -> None:
    """A plain index ``ix_<table>_<column>`` on each column that has none of that name yet."""
    present = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table)}
    for column in columns:
        if f"ix_{table}_{column}" not in present:
            op.create_index(f"ix_{table}_{column}", table, [column])


def _create_table(name: str, *items) -> None:
    if not _has_table(name):
        op.create_table(name, *items)


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects (batch mode on SQLite only rebuilds a table when it must).
    with op.batch_alter_table("households") as batch:
        if not _has_column("households", "commune"):
            batch.add_column(sa.Column("commune", sa.String(length=64), nullable=False, server_default="default"))
    _add_indexes("households", "commune")
    with op.batch_alter_table("meters") as batch:
        if not _has_column("meters", "gateway"):
            batch.add_column(sa.Column("gateway", sa.String(length=64), nullable=True))
        if not _has_column("meters", "topic_name"):
            batch.add_column(sa.Column("topic_name", sa.String(length=64), nullable=True))
    _add_indexes("meters", "gateway")

    _create_table(
        "household_caregivers",
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("relation", sa.String(length=40), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("history_granted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("household_id", "person_id"),
    )
    _create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=24), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=True),
        sa.Column("commune", sa.String(length=64), nullable=True),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by", sa.String(length=24), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    _add_indexes("api_keys", "person_id")
    _create_table(
        "ack_links_used",
        sa.Column("jti", sa.String(length=32), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    _add_indexes("ack_links_used", "used_at")
    _create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=24), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=True),
        sa.Column("meter_id", sa.String(length=64), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _add_indexes("audit_log", "at", "household_id", "person_id")
    _create_table(
        "home_sensors",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("friendly_name", sa.String(length=200), nullable=False),
        sa.Column("room", sa.String(length=20), nullable=False),   # a vigie.records.Room value
        sa.Column("kind", sa.String(length=20), nullable=False),   # a vigie.records.SensorKind value
        sa.Column("expected_interval_s", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("friendly_name"),
    )
    _add_indexes("home_sensors", "household_id")


def downgrade() -> None:
    for table in ("home_sensors", "audit_log", "ack_links_used", "api_keys", "household_caregivers"):
        op.drop_table(table)
    op.drop_index("ix_meters_gateway", table_name="meters")
    with op.batch_alter_table("meters") as batch:
        batch.drop_column("topic_name")
        batch.drop_column("gateway")
    op.drop_index("ix_households_commune", table_name="households")
    with op.batch_alter_table("households") as batch:
        batch.drop_column("commune")

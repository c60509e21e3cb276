"""Staff findings (heating faults, device health), their digests and the weekly heating reports.

- new tables ``staff_digests``, ``facility_findings`` (one row per finding episode; at most one not
  resolved per kind and subject: partial unique index ``uq_facility_finding_open``) and
  ``heating_reports`` (one weekly report per building and week);
- ``notifications.digest_id`` (FK, cascade): a notification may be about a staff digest.

Every step runs only when its table or column is missing, like 0002 and 0003.

Revision ID: 0005_staff_findings
Revises: 0004_heating
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_staff_findings"
down_revision = "0004_heating"
branch_labels = None
depends_on = None


def _inspector():
    return sa.inspect(op.get_bind())


def _index(table: str, column: str) -> None:
    if f"ix_{table}_{column}" not in {ix["name"] for ix in _inspector().get_indexes(table)}:
        op.create_index(f"ix_{table}_{column}", table, [column])


def upgrade() -> None:
    if not _inspector().has_table("staff_digests"):
        op.create_table(
            "staff_digests",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("commune", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("new_count", sa.Integer(), nullable=False),
            sa.Column("open_count", sa.Integer(), nullable=False),
            sa.Column("notified", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    _index("staff_digests", "commune")
    if not _inspector().has_table("facility_findings"):
        op.create_table(
            "facility_findings",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("commune", sa.String(length=64), nullable=False),
            sa.Column("family", sa.String(length=20), nullable=False),
            sa.Column("kind", sa.String(length=40), nullable=False),
            sa.Column("subject", sa.String(length=200), nullable=False),
            sa.Column("label", sa.String(length=300), nullable=False),
            sa.Column("building_id", sa.String(length=64), nullable=True),
            sa.Column("room_id", sa.String(length=64), nullable=True),
            sa.Column("device_id", sa.String(length=64), nullable=True),
            sa.Column("start", sa.DateTime(timezone=True), nullable=False),
            sa.Column("end", sa.DateTime(timezone=True), nullable=False),
            sa.Column("evidence", sa.JSON(), nullable=False),
            sa.Column("status", sa.String(length=20), nullable=False),
            sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
            sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("digest_id", sa.Integer(), nullable=True),
            sa.ForeignKeyConstraint(["digest_id"], ["staff_digests.id"], ondelete="SET NULL",
                                    name="fk_facility_findings_digest_id"),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("uq_facility_finding_open", "facility_findings", ["kind", "subject"], unique=True,
                        sqlite_where=sa.text("status != 'resolved'"),
                        postgresql_where=sa.text("status != 'resolved'"))
    for column in ("commune", "building_id", "status", "digest_id"):
        _index("facility_findings", column)
    if not _inspector().has_table("heating_reports"):
        op.create_table(
            "heating_reports",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("building_id", sa.String(length=64), nullable=False),
            sa.Column("commune", sa.String(length=64), nullable=False),
            sa.Column("week_start", sa.Date(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("body", sa.JSON(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("building_id", "week_start", name="uq_heating_report_week"),
        )
    _index("heating_reports", "commune")
    if "digest_id" not in {c["name"] for c in _inspector().get_columns("notifications")}:
        with op.batch_alter_table("notifications") as batch:
            batch.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
            batch.create_foreign_key("fk_notifications_digest_id", "staff_digests", ["digest_id"], ["id"],
                                     ondelete="CASCADE")
    _index("notifications", "digest_id")


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE digest_id IS NOT NULL")
    op.drop_index("ix_notifications_digest_id", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("fk_notifications_digest_id", type_="foreignkey")
        batch.drop_column("digest_id")
    op.drop_table("heating_reports")
    op.drop_table("facility_findings")
    op.drop_table("staff_digests")

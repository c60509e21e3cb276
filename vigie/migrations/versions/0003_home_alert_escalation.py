"""Home alerts and their escalation.

- new tables ``home_alerts`` (one row per unusual-behaviour episode, unique per household, kind,
  sensor and start) and ``home_alert_steps`` (escalation steps, unique per alert and step number);
- ``notifications``: ``alert_id`` becomes nullable, ``home_alert_id`` (FK, cascade) and ``step``
  are added, unique per (home alert, person, step) so one step never notifies a person twice;
- ``persons``: ``availability``, ``quiet_hours``, ``notify`` (per-severity channels, JSON) and
  ``staff_commune`` (town-hall staff, the last escalation level); ``households``:
  ``escalation_wait_min`` and ``reminder_interval_min``; ``ack_links_used.alert_type``.

Like 0002, every step runs only when its table, column or constraint is missing: a store created
by ``create_all`` of these models and stamped at the baseline upgrades to the same schema.

Revision ID: 0003_home_alert_escalation
Revises: 0002_communes_caregivers_keys
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_home_alert_escalation"
down_revision = "0002_communes_caregivers_keys"
branch_labels = None
depends_on = None


def _inspector():
    return sa.inspect(op.get_bind())


def _columns(table: str) -> dict[str, dict]:
    return {c["name"]: c for c in _inspector().get_columns(table)}


def _index(table: str, column: str) -> None:
    if f"ix_{table}_{column}" not in {ix["name"] for ix in _inspector().get_indexes(table)}:
        op.create_index(f"ix_{table}_{column}", table, [column])


def upgrade() -> None:
    if not _inspector().has_table("home_alerts"):
        op.create_table(
            "home_alerts",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("household_id", sa.String(length=64), nullable=False),
            sa.Column("kind", sa.String(length=40), nullable=False),
            sa.Column("severity", sa.String(length=10), nullable=False),
            sa.Column("sensor_id", sa.String(length=64), server_default="", nullable=False),
            sa.Column("start", sa.DateTime(timezone=True), nullable=False),
            sa.Column("evidence", sa.JSON(), nullable=False),
            sa.Column("status", sa.String(length=20), nullable=False),
            sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("condition_cleared_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
            sa.Column("acknowledged_as", sa.String(length=40), nullable=True),
            sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("resolved_by", sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("household_id", "kind", "sensor_id", "start", name="uq_home_alert_episode"),
        )
    _index("home_alerts", "household_id")
    _index("home_alerts", "status")
    if not _inspector().has_table("home_alert_steps"):
        op.create_table(
            "home_alert_steps",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("home_alert_id", sa.Integer(), nullable=False),
            sa.Column("step_no", sa.Integer(), nullable=False),
            sa.Column("level", sa.Integer(), nullable=False),
            sa.Column("round", sa.Integer(), nullable=False),
            sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("notified", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(["home_alert_id"], ["home_alerts.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("home_alert_id", "step_no", name="uq_home_alert_step"),
        )
    _index("home_alert_steps", "home_alert_id")

    if "alert_type" not in _columns("ack_links_used"):
        with op.batch_alter_table("ack_links_used") as batch:
            batch.add_column(sa.Column("alert_type", sa.String(length=10), server_default="water", nullable=False))
    households = _columns("households")
    with op.batch_alter_table("households") as batch:
        for name in ("escalation_wait_min", "reminder_interval_min"):
            if name not in households:
                batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    persons = _columns("persons")
    with op.batch_alter_table("persons") as batch:
        for column in (sa.Column("availability", sa.String(length=500), nullable=True),
                       sa.Column("quiet_hours", sa.String(length=500), nullable=True),
                       sa.Column("notify", sa.JSON(), nullable=True),
                       sa.Column("staff_commune", sa.String(length=64), nullable=True)):
            if column.name not in persons:
                batch.add_column(column)
    _index("persons", "staff_commune")

    notifications = _columns("notifications")
    if "home_alert_id" not in notifications or not notifications["alert_id"]["nullable"]:
        # One batch: SQLite rebuilds the table once (foreign keys are off during migrations).
        with op.batch_alter_table("notifications") as batch:
            if "home_alert_id" not in notifications:
                batch.add_column(sa.Column("home_alert_id", sa.Integer(), nullable=True))
                batch.add_column(sa.Column("step", sa.String(length=20), nullable=True))
                batch.create_unique_constraint("uq_notification_home_alert_person_step",
                                               ["home_alert_id", "person_id", "step"])
                batch.create_foreign_key("fk_notifications_home_alert_id", "home_alerts", ["home_alert_id"],
                                         ["id"], ondelete="CASCADE")
            batch.alter_column("alert_id", existing_type=sa.Integer(), nullable=True)
    _index("notifications", "home_alert_id")


def downgrade() -> None:
    # Notifications about home alerts have no place in the older schema.
    op.execute("DELETE FROM notifications WHERE alert_id IS NULL")
    op.drop_index("ix_notifications_home_alert_id", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("fk_notifications_home_alert_id", type_="foreignkey")
        batch.drop_constraint("uq_notification_home_alert_person_step", type_="unique")
        batch.alter_column("alert_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("step")
        batch.drop_column("home_alert_id")
    op.drop_index("ix_persons_staff_commune", table_name="persons")
    with op.batch_alter_table("persons") as batch:
        for name in ("staff_commune", "notify", "quiet_hours", "availability"):
            batch.drop_column(name)
    with op.batch_alter_table("households") as batch:
        batch.drop_column("reminder_interval_min")
        batch.drop_column("escalation_wait_min")
    with op.batch_alter_table("ack_links_used") as batch:
        batch.drop_column("alert_type")
    op.drop_table("home_alert_steps")
    op.drop_table("home_alerts")

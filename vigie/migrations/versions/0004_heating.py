"""Town-hall heating and LoRaWAN devices (issue 5, :mod:`vigie.heating_registry`).

New tables ``buildings``, ``heating_rooms``, ``heating_devices`` (zigbee2mqtt friendly name and
LoRaWAN DevEUI each unique when set), ``lorawan_device_types`` (family and field mapping, JSON)
and ``lorawan_devices`` (by DevEUI: a water meter's radio or a heating device). Nothing existing
changes.

Like 0002 and 0003, a table or index is created only when missing: a store that ``create_all`` of
these models made and that was stamped at the baseline upgrades to the same schema.

Revision ID: 0004_heating
Revises: 0003_home_alert_escalation
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_heating"
down_revision = "0003_home_alert_escalation"
branch_labels = None
depends_on = None


def _create_table(name: str, *items) -> None:
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *items)


def _index(table: str, *columns: str) -> None:
    present = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table)}
    for column in columns:
        if f"ix_{table}_{column}" not in present:
            op.create_index(f"ix_{table}_{column}", table, [column])


def upgrade() -> None:
    _create_table(
        "buildings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("commune", sa.String(length=64), nullable=False),
        sa.Column("holidays", sa.String(length=40), nullable=True),
        sa.Column("closures", sa.JSON(), nullable=True),
        sa.Column("outdoor_device", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("buildings", "commune")
    _create_table(
        "heating_rooms",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("building_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("comfort_c", sa.Float(), nullable=False),
        sa.Column("setback_c", sa.Float(), nullable=False),
        sa.Column("schedule", sa.String(length=500), nullable=True),
        sa.Column("closures", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["building_id"], ["buildings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("heating_rooms", "building_id")
    _create_table(
        "lorawan_device_types",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=10), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    _create_table(
        "heating_devices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column("building_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),   # a vigie.records.HeatingDeviceKind value
        sa.Column("friendly_name", sa.String(length=200), nullable=True),
        sa.Column("radiator_w", sa.Float(), nullable=True),
        sa.Column("expected_interval_s", sa.Integer(), nullable=False),
        sa.Column("dev_eui", sa.String(length=16), nullable=True),
        sa.Column("lorawan_type", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["heating_rooms.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["building_id"], ["buildings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["lorawan_type"], ["lorawan_device_types.name"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("friendly_name"),
        sa.UniqueConstraint("dev_eui"),
    )
    _index("heating_devices", "room_id", "building_id")
    _create_table(
        "lorawan_devices",
        sa.Column("dev_eui", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["type"], ["lorawan_device_types.name"]),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["heating_devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dev_eui"),
    )
    _index("lorawan_devices", "type", "meter_id", "device_id")


def downgrade() -> None:
    for table in ("lorawan_devices", "heating_devices", "lorawan_device_types", "heating_rooms", "buildings"):
        op.drop_table(table)

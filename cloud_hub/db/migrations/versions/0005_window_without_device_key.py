"""Telemetry windows without the foreign key to ``device`` (issue 10: ingest that keeps up).

The key had PostgreSQL check every stored window against ``device``: about a quarter of a
worker's cost per point there (client and server CPU, ``bench/ingest.py``). What it guarded
stays guarded: ingest files windows only under device ids it read from ``device`` in its own
transaction (or learned from a committed one), nothing deletes devices, and every device a batch
stores windows for has its latest values upserted in the same transaction into ``latest_value``,
whose foreign key to ``device`` stays. On SQLite the table is rebuilt (batch mode): the time it
takes grows with the stored windows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# PostgreSQL's own name for the key 0001 created; SQLite's is unnamed and gets it from this
# convention when batch mode reflects the table
DEVICE_KEY = "telemetry_window_device_id_fkey"
_NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}


def upgrade() -> None:
    with op.batch_alter_table("telemetry_window", naming_convention=_NAMING) as window:
        window.drop_constraint(DEVICE_KEY, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("telemetry_window") as window:
        window.create_foreign_key(DEVICE_KEY, "device", ["device_id"], ["id"])

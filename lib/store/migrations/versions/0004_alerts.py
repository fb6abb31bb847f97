"""Alerts and drift: channels (encrypted), key baselines, alert state, transitions, deliveries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def _account_key() -> sa.Column:
    """Return an account id column that is also the row's key."""
    return sa.Column(
        "account_id",
        sa.Integer(),
        sa.ForeignKey("accounts.id"),
        primary_key=True,
        autoincrement=False,
    )


def upgrade() -> None:
    """Create alert_channels, key_baselines, alert_state, transitions and alert_deliveries."""
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url_enc", sa.Text(), nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column("masked", sa.String(200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_alert_channels_master_key_id", "alert_channels", ["master_key_id"])
    op.create_table(
        "key_baselines",
        _account_key(),
        sa.Column("permissions", sa.String(500), nullable=False),
        sa.Column("ip_whitelist", sa.Text(), nullable=True),
        sa.Column("uid", sa.String(64), nullable=True),
        sa.Column("is_master", sa.Boolean(), nullable=True),
        sa.Column("sub_name", sa.String(200), nullable=True),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "alert_state",
        _account_key(),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("risks", sa.JSON(), nullable=False),
        sa.Column("changed_at", TIME, nullable=False),
        sa.Column("alerted_at", TIME, nullable=True),
        sa.Column("recent_changes", sa.JSON(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "transitions",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("at", TIME, nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("old_status", sa.String(32), nullable=True),
        sa.Column("new_status", sa.String(32), nullable=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("alerted", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(300), nullable=True),
    )
    op.create_index("ix_transitions_at", "transitions", ["at"])
    op.create_index("ix_transitions_account_at", "transitions", ["account_id", "at"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("transition_id", BIG_ID, sa.ForeignKey("transitions.id"), nullable=True),
        sa.Column("channel_id", sa.Integer(), sa.ForeignKey("alert_channels.id"), nullable=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("claimed_until", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
    )
    op.create_index("ix_alert_deliveries_transition_id", "alert_deliveries", ["transition_id"])
    op.create_index("ix_alert_deliveries_channel_id", "alert_deliveries", ["channel_id"])
    op.create_index("ix_alert_deliveries_state", "alert_deliveries", ["state"])


def downgrade() -> None:
    """Drop the five tables: channels, baselines and the alert history are forgotten."""
    op.drop_table("alert_deliveries")
    op.drop_table("transitions")
    op.drop_table("alert_state")
    op.drop_table("key_baselines")
    op.drop_index("ix_alert_channels_master_key_id", "alert_channels")
    op.drop_table("alert_channels")

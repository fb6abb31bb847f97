"""Scheduled checks: each account's next due time and lease, watchers' heartbeats, rate limits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add check_schedule and watchers, and a 429000's pool and reset to probe_results."""
    op.create_table(
        "check_schedule",
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", TIME, nullable=True),
    )
    op.create_index("ix_check_schedule_due_at", "check_schedule", ["due_at"])
    op.create_table(
        "watchers",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("beat_at", TIME, nullable=False),
        sa.Column("round_started_at", TIME, nullable=True),
        sa.Column("round_finished_at", TIME, nullable=True),
        sa.Column("round_checked", sa.Integer(), nullable=False),
        sa.Column("round_seconds", sa.Float(), nullable=True),
        sa.Column("next_due_at", TIME, nullable=True),
        sa.Column("stopped_at", TIME, nullable=True),
    )
    op.create_index("ix_watchers_beat_at", "watchers", ["beat_at"])
    with op.batch_alter_table("probe_results") as batch:
        batch.add_column(sa.Column("rate_limited_pool", sa.String(32), nullable=True))
        batch.add_column(sa.Column("rate_limit_reset_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Remove what upgrade added."""
    with op.batch_alter_table("probe_results") as batch:
        batch.drop_column("rate_limit_reset_ms")
        batch.drop_column("rate_limited_pool")
    op.drop_index("ix_watchers_beat_at", table_name="watchers")
    op.drop_table("watchers")
    op.drop_index("ix_check_schedule_due_at", table_name="check_schedule")
    op.drop_table("check_schedule")

"""Operators sign in: the first-admin marker, operator sessions, failed sign-in counts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create console_setup (one row at most), operator_sessions and login_throttle."""
    op.create_table(
        "console_setup",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("operator_name", sa.String(200), nullable=False),
        sa.Column("done_at", TIME, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_console_setup_one_row"),
    )
    op.create_table(
        "operator_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("operator_name", sa.String(200), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("last_seen_at", TIME, nullable=False),
    )
    op.create_index("ix_operator_sessions_operator_name", "operator_sessions", ["operator_name"])
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", TIME, nullable=False),
    )


def downgrade() -> None:
    """Drop the three tables (every session ends; failure counts are forgotten)."""
    op.drop_table("login_throttle")
    op.drop_index("ix_operator_sessions_operator_name", "operator_sessions")
    op.drop_table("operator_sessions")
    op.drop_table("console_setup")

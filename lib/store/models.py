"""The database tables (SQLModel) and the small enums and settings type that describe their values.

Every schema change goes through an Alembic migration in lib/store/migrations/versions/.
"""

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from lib.kucoin.constants import DEFAULT_KEY_VERSION


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime; SQLite stores it as naive UTC text, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time is ambiguous; refusing it keeps every stored time UTC.
            raise ValueError("store times as aware datetimes (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# 64-bit ids for the tables that grow with every check; SQLite needs INTEGER for its rowid alias.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class AuditAction(enum.StrEnum):
    """What an audit event records."""

    BIND = "bind"
    VERIFY = "verify"
    ROTATE_CREDENTIAL = "rotate_credential"
    CHANGE_SCOPES = "change_scopes"
    PAUSE = "pause"
    RESUME = "resume"
    UNBIND = "unbind"
    ROTATE_MASTER_KEY = "rotate_master_key"
    CHANGE_SETTINGS = "change_settings"
    LOGIN = "login"
    FAILED_LOGIN = "failed_login"
    LOGOUT = "logout"
    ADD_OPERATOR = "add_operator"
    REMOVE_OPERATOR = "remove_operator"
    CHANGE_ROLE = "change_role"
    CHANGE_PASSWORD = "change_password"
    CONFIRM_KEY_BACKUP = "confirm_key_backup"
    ADD_ALERT_CHANNEL = "add_alert_channel"
    REMOVE_ALERT_CHANNEL = "remove_alert_channel"
    ACKNOWLEDGE_DRIFT = "acknowledge_drift"


class Role(enum.StrEnum):
    """What an operator may do: an admin acts, a viewer reads (never a secret)."""

    ADMIN = "admin"
    VIEWER = "viewer"


class SignInMethod(enum.StrEnum):
    """How an operator session was opened."""

    PASSWORD = "password"
    SSO = "sso"


@dataclass(frozen=True)
class Settings:
    """Operator policy kept in the settings table; a field missing there takes this default."""

    egress_ips: tuple[str, ...] = ()  # the platform's public IPs every key must whitelist
    freshness_seconds: int = 3600  # a key's last good check must be younger than this
    freshness_grace_seconds: int = 900  # ...plus this much slack before it turns red
    rotation_age_days: int = 90  # warn when a credential is older than this
    key_version: str = DEFAULT_KEY_VERSION  # KC-API-KEY-VERSION sent with new keys
    futures_currencies: tuple[str, ...] = ("USDT",)  # futures overviews each check reads
    alert_reminder_hours: int = 0  # repeat an alert while an account stays failing (0: never)
    deletion_warning_days: int = 7  # alert when KuCoin's 30-day rule may delete a key this soon
    console_url: str = ""  # where the console is served: alerts link to its account pages


class Account(SQLModel, table=True):
    """One bound (or formerly bound) exchange account; never deleted so audit rows keep it."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("label", name="uq_accounts_label"),)

    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(max_length=200)
    exchange: str = Field(default="kucoin", max_length=32)
    scopes: list[str] = Field(default_factory=list, sa_type=JSON)  # of account_fields.SCOPES
    paused: bool = False
    unverified: bool = True  # saved without a passing check
    unbound_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str = Field(max_length=200)


class Credential(SQLModel, table=True):
    """The encrypted KuCoin key of one account; deleted on unbind."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("fingerprint", name="uq_credentials_fingerprint"),)

    # One credential per account; the account id is also the row identity bound into the AAD.
    account_id: int = Field(
        primary_key=True, foreign_key="accounts.id", sa_column_kwargs={"autoincrement": False}
    )
    api_key_enc: str = Field(sa_type=Text)
    api_secret_enc: str = Field(sa_type=Text)
    passphrase_enc: str = Field(sa_type=Text)
    master_key_id: str = Field(max_length=64, index=True)
    fingerprint: str = Field(max_length=128)  # "<key id>:<HMAC-SHA256 hex>" of the API key
    key_last4: str = Field(max_length=4)
    key_version: str = Field(max_length=8)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rotated_by: str | None = Field(default=None, max_length=200)


class ProbeRecord(SQLModel, table=True):
    """One check of one account: the fields of lib.kucoin.probe_result.ProbeResult."""

    __tablename__ = "probe_results"
    __table_args__ = (Index("ix_probe_results_account_checked", "account_id", "checked_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    account_id: int = Field(foreign_key="accounts.id")
    checked_at: datetime = Field(sa_type=UTCDateTime)
    outcome: str = Field(max_length=16)
    latency_ms: int
    code: str | None = Field(default=None, max_length=32)
    message: str | None = Field(default=None, sa_type=Text)
    http_status: int | None = None
    endpoint: str | None = Field(default=None, max_length=200)
    permissions: str = Field(default="", max_length=500)  # comma-joined, as KuCoin writes them
    ip_whitelist: str | None = Field(default=None, sa_type=Text)  # masked, as KuCoin returns it
    is_master: bool | None = None
    sub_name: str | None = Field(default=None, max_length=200)
    uid: str | None = Field(default=None, max_length=64)
    remark: str | None = Field(default=None, sa_type=Text)
    api_version: int | None = None
    key_created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    clock_offset_ms: int | None = None
    seen_ip: str | None = Field(default=None, max_length=64)
    rate_limit_remaining: int | None = None
    # {"spot": [{account_type, currency, balance, available, holds}], "futures": {ccy: {...}}},
    # every Decimal written as a string so it reads back exactly.
    balances: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    futures_permission_missing: bool = False
    vip_level: int | None = None
    rate_limited_pool: str | None = Field(default=None, max_length=32)
    rate_limit_reset_ms: int | None = None


class CheckSchedule(SQLModel, table=True):
    """When an account's next check is due, and which watcher holds it now (its lease)."""

    __tablename__ = "check_schedule"

    account_id: int = Field(
        primary_key=True, foreign_key="accounts.id", sa_column_kwargs={"autoincrement": False}
    )
    due_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # A claim: this watcher checks the account now; anyone may take it once it has expired.
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WatcherBeat(SQLModel, table=True):
    """One watcher's heartbeat: alive when, its last round, when it looks again."""

    __tablename__ = "watchers"

    name: str = Field(primary_key=True, max_length=200)
    started_at: datetime = Field(sa_type=UTCDateTime)
    beat_at: datetime = Field(sa_type=UTCDateTime, index=True)
    round_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    round_finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    round_checked: int = 0
    round_seconds: float | None = None
    next_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SettingRow(SQLModel, table=True):
    """One operator setting by name; the value is JSON."""

    __tablename__ = "settings"

    name: str = Field(primary_key=True, max_length=100)
    value: Any = Field(sa_type=JSON)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    updated_by: str = Field(max_length=200)


class Operator(SQLModel, table=True):
    """A person who may sign in to the console."""

    __tablename__ = "operators"
    __table_args__ = (UniqueConstraint("name", name="uq_operators_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    password_hash: str = Field(sa_type=Text)
    role: str = Field(max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)
    disabled: bool = False


class ConsoleSetup(SQLModel, table=True):
    """The first admin's creation: one row at most, so a second setup cannot succeed."""

    __tablename__ = "console_setup"
    __table_args__ = (CheckConstraint("id = 1", name="ck_console_setup_one_row"),)

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    operator_name: str = Field(max_length=200)
    done_at: datetime = Field(sa_type=UTCDateTime)


class OperatorSession(SQLModel, table=True):
    """A signed-in browser: the SHA-256 of its token, who, how, and when it was last used."""

    __tablename__ = "operator_sessions"

    id: str = Field(primary_key=True, max_length=64)  # hex SHA-256 of the token; never the token
    operator_name: str = Field(max_length=200, index=True)
    method: str = Field(max_length=16)  # a SignInMethod value
    role: str = Field(max_length=32)  # an SSO session's role; a password session reads operators
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins counted per name tried, and overall, to slow down guessing."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=250)
    failures: int
    last_failure_at: datetime = Field(sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    """One action by one actor; append-only (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=32)
    account_id: int | None = Field(default=None, foreign_key="accounts.id", index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # never a secret


class VaultKey(SQLModel, table=True):
    """A master key id the database knows, its state and an encrypted check value."""

    __tablename__ = "vault_keys"

    key_id: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=16)  # a lib.vault KeyState value
    # A known marker encrypted with this key: a wrong key file fails to open it.
    check_value: str = Field(sa_type=Text)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class AlertChannel(SQLModel, table=True):
    """Where alerts go: one apprise URL, encrypted like a credential (it holds tokens)."""

    __tablename__ = "alert_channels"

    id: int | None = Field(default=None, primary_key=True)
    url_enc: str = Field(sa_type=Text)
    master_key_id: str = Field(max_length=64, index=True)
    masked: str = Field(max_length=200)  # the scheme and the URL's last characters, never a token
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)


class KeyBaseline(SQLModel, table=True):
    """What KuCoin said about an account's key at bind (or at the last acknowledgement)."""

    __tablename__ = "key_baselines"

    account_id: int = Field(
        primary_key=True, foreign_key="accounts.id", sa_column_kwargs={"autoincrement": False}
    )
    permissions: str = Field(default="", max_length=500)  # comma-joined, as KuCoin writes them
    ip_whitelist: str | None = Field(default=None, sa_type=Text)  # masked, as KuCoin returns it
    uid: str | None = Field(default=None, max_length=64)
    is_master: bool | None = None
    sub_name: str | None = Field(default=None, max_length=200)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    recorded_by: str = Field(max_length=200)


class AlertState(SQLModel, table=True):
    """The last state alerts were decided on for one account: its status and alerted risks."""

    __tablename__ = "alert_state"

    account_id: int = Field(
        primary_key=True, foreign_key="accounts.id", sa_column_kwargs={"autoincrement": False}
    )
    status: str = Field(max_length=32)
    risks: list[str] = Field(default_factory=list, sa_type=JSON)  # the risk keys alerted on
    changed_at: datetime = Field(sa_type=UTCDateTime)
    alerted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recent_changes: list[str] = Field(default_factory=list, sa_type=JSON)  # ISO times: flapping
    flapping: bool = False


class Transition(SQLModel, table=True):
    """One change that matters: an account's status or risk, or a fleet incident; its message."""

    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_account_at", "account_id", "at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    account_id: int | None = Field(default=None, foreign_key="accounts.id")
    kind: str = Field(max_length=32)  # a lib.health.transitions Kind value
    old_status: str | None = Field(default=None, max_length=32)
    new_status: str | None = Field(default=None, max_length=32)
    title: str = Field(max_length=300)
    body: str = Field(sa_type=Text)  # the message as sent: never a key, secret or passphrase
    alerted: bool = True  # False: recorded but not sent (flapping, part of an incident)
    note: str | None = Field(default=None, max_length=300)  # why it was not sent


class AlertDelivery(SQLModel, table=True):
    """One message to one channel: pending until sent, or failed with the channel's error."""

    __tablename__ = "alert_deliveries"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    transition_id: int | None = Field(
        default=None, foreign_key="transitions.id", index=True, sa_type=BigIntId
    )
    channel_id: int | None = Field(default=None, foreign_key="alert_channels.id", index=True)
    title: str = Field(max_length=300)
    body: str = Field(sa_type=Text)
    state: str = Field(max_length=16, index=True)  # pending, sending, sent, failed
    attempts: int = 0
    error: str | None = Field(default=None, sa_type=Text)  # the channel's answer, never its URL
    created_at: datetime = Field(sa_type=UTCDateTime)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


AUDIT_TABLE = AuditEvent.__tablename__

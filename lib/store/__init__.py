"""The store: the only way into the database (accounts, credentials, checks, settings, audit).

Every function takes a Session and runs inside the caller's transaction (open one with
lib.store.database.transaction or read_session); none commits. A change and its audit row are
therefore written together or not at all. Pages read the DataFrames; they never touch the ORM.

    models      the SQLModel tables and the small enums and settings type of their values
    database    engines per backend, migrations at start-up, transactions and read sessions
    accounts    bind, rotate, scopes, pause, verify, unbind; AccountView (never a secret)
    checks      record and read probe results
    settings    operator settings and the range each number must stay in
    audit       the append-only audit log
    frames      DataFrames of accounts and checks, for pages, the fleet table and notebooks
    seeding     history staged as if it had happened earlier (the demo fleet)
    master_keys the master keys the database knows, and the credentials each one seals
    errors      StoreError and its subclasses, drawn below
    migrations  Alembic

    StoreError              a store call that cannot be done as asked
    ├── InvalidInput        a label, scope, credential or setting that is not acceptable
    ├── AccountNotFound     no account has this id
    ├── AccountUnbound      the account was unbound: its credentials are gone
    ├── DuplicateLabelError another account already has this label
    └── DuplicateKeyError   this API key is already bound to another account (names it)
"""

from lib.store.accounts import (
    AccountView,
    create_account_with_credentials,
    find_account_by_api_key,
    get_account,
    list_accounts,
    load_credentials,
    mark_verified,
    pause,
    resume,
    rotate_credentials,
    set_scopes,
    unbind,
)
from lib.store.audit import AuditEntry, audit_log, audit_since, record_audit
from lib.store.checks import (
    decode_balances,
    encode_balances,
    latest_probe,
    probe_history,
    record_probe,
    record_probes,
)
from lib.store.errors import (
    AccountNotFound,
    AccountUnbound,
    DuplicateKeyError,
    DuplicateLabelError,
    InvalidInput,
    StoreError,
)
from lib.store.frames import (
    ACCOUNT_FRAME_COLUMNS,
    PROBE_FRAME_COLUMNS,
    accounts_frame,
    data_version,
    deciding_checks_frame,
    latest_probes_frame,
    new_checks_frame,
    probe_history_frame,
)
from lib.store.models import AuditAction, Settings
from lib.store.settings import (
    MAX_EGRESS_IPS,
    MAX_FUTURES_CURRENCIES,
    SETTING_RANGES,
    SettingRange,
    get_settings,
    invalid_settings,
    setting_in_range,
    update_settings,
)

__all__ = [
    "ACCOUNT_FRAME_COLUMNS",
    "MAX_EGRESS_IPS",
    "MAX_FUTURES_CURRENCIES",
    "PROBE_FRAME_COLUMNS",
    "SETTING_RANGES",
    "AccountNotFound",
    "AccountUnbound",
    "AccountView",
    "AuditAction",
    "AuditEntry",
    "DuplicateKeyError",
    "DuplicateLabelError",
    "InvalidInput",
    "SettingRange",
    "Settings",
    "StoreError",
    "accounts_frame",
    "audit_log",
    "audit_since",
    "create_account_with_credentials",
    "data_version",
    "deciding_checks_frame",
    "decode_balances",
    "encode_balances",
    "find_account_by_api_key",
    "get_account",
    "get_settings",
    "invalid_settings",
    "latest_probe",
    "latest_probes_frame",
    "list_accounts",
    "load_credentials",
    "mark_verified",
    "new_checks_frame",
    "pause",
    "probe_history",
    "probe_history_frame",
    "record_audit",
    "record_probe",
    "record_probes",
    "resume",
    "rotate_credentials",
    "set_scopes",
    "setting_in_range",
    "unbind",
    "update_settings",
]

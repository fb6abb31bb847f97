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
    operators   operators (password hashes, roles), their sessions, failed sign-in counts
    frames      DataFrames of accounts and checks, for pages, the fleet table and notebooks
    seeding     history staged as if it had happened earlier (the demo fleet)
    master_keys the master keys the database knows, and the credentials each one seals
    schedule    when each account's next check is due, watchers' leases and heartbeats
    alerts      alert channels (sealed), key baselines, alert state, transitions, deliveries
    errors      StoreError and its subclasses, drawn below
    migrations  Alembic

    StoreError              a store call that cannot be done as asked
    ├── InvalidInput        a label, scope, credential or setting that is not acceptable
    ├── AccountNotFound     no account has this id
    ├── AccountUnbound      the account was unbound: its credentials are gone
    ├── DuplicateLabelError another account already has this label
    ├── DuplicateKeyError   this API key is already bound to another account (names it)
    ├── OperatorNotFound    no operator has this name
    ├── LastAdmin           the only admin cannot be removed or made a viewer
    └── SetupAlreadyDone    the first admin exists already: sign in instead
"""

from lib.store.accounts import (
    AccountView,
    create_account_with_credentials,
    find_account_by_api_key,
    get_account,
    label_in_use,
    list_accounts,
    load_credentials,
    mark_verified,
    pause,
    record_checks,
    resume,
    rotate_credentials,
    set_scopes,
    unbind,
)
from lib.store.audit import AuditEntry, audit_log, audit_since, record_audit
from lib.store.checks import (
    decode_balances,
    encode_balances,
    last_success_keys,
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
    LastAdmin,
    OperatorNotFound,
    SetupAlreadyDone,
    StoreError,
)
from lib.store.frames import (
    ACCOUNT_FRAME_COLUMNS,
    PROBE_FRAME_COLUMNS,
    accounts_frame,
    checks_since_chunks,
    data_version,
    deciding_checks_frame,
    latest_probes_frame,
    new_checks_frame,
    probe_history_frame,
)
from lib.store.models import AuditAction, Role, Settings, SignInMethod
from lib.store.operators import (
    OperatorView,
    SessionView,
    active_sessions,
    add_operator,
    clean_operator_name,
    end_session,
    end_sessions_before,
    end_sessions_of,
    get_operator,
    get_session,
    list_operators,
    login_failures,
    operator_name_problem,
    password_hash,
    record_failed_login,
    rehash_password,
    remove_operator,
    set_login_failures,
    set_password_hash,
    set_role,
    setup_done,
    start_session,
    touch_session,
)
from lib.store.schedule import (
    Heartbeat,
    claim_due,
    finish_checks,
    heartbeats,
    leases,
    next_due_at,
    record_heartbeat,
    release_leases,
    schedule_checks,
    unscheduled_accounts,
)
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
    "Heartbeat",
    "InvalidInput",
    "LastAdmin",
    "OperatorNotFound",
    "OperatorView",
    "Role",
    "SessionView",
    "SettingRange",
    "Settings",
    "SetupAlreadyDone",
    "SignInMethod",
    "StoreError",
    "accounts_frame",
    "active_sessions",
    "add_operator",
    "audit_log",
    "audit_since",
    "checks_since_chunks",
    "claim_due",
    "clean_operator_name",
    "create_account_with_credentials",
    "data_version",
    "deciding_checks_frame",
    "decode_balances",
    "encode_balances",
    "end_session",
    "end_sessions_before",
    "end_sessions_of",
    "find_account_by_api_key",
    "finish_checks",
    "get_account",
    "get_operator",
    "get_session",
    "get_settings",
    "heartbeats",
    "invalid_settings",
    "label_in_use",
    "last_success_keys",
    "latest_probe",
    "latest_probes_frame",
    "leases",
    "list_accounts",
    "list_operators",
    "load_credentials",
    "login_failures",
    "mark_verified",
    "new_checks_frame",
    "next_due_at",
    "operator_name_problem",
    "password_hash",
    "pause",
    "probe_history",
    "probe_history_frame",
    "record_audit",
    "record_checks",
    "record_failed_login",
    "record_heartbeat",
    "record_probe",
    "record_probes",
    "rehash_password",
    "release_leases",
    "remove_operator",
    "resume",
    "rotate_credentials",
    "schedule_checks",
    "set_login_failures",
    "set_password_hash",
    "set_role",
    "set_scopes",
    "setting_in_range",
    "setup_done",
    "start_session",
    "touch_session",
    "unbind",
    "unscheduled_accounts",
    "update_settings",
]

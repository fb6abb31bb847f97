"""Operators: passwords, the first admin, roles, sessions, and failed sign-ins, on both backends.

Real parts: a SQLite file and a PostgreSQL schema (store_fixtures), real Argon2id hashes, real
threads racing the database; KuCoin is the simulator over HTTP where a service needs it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from app_fixtures import OPEN_TRADER, TRADER, SimEnv, sim_env_fixture
from argon2 import extract_parameters
from sqlmodel import Session
from store_fixtures import (
    database_url_fixture,
    engine_fixture,
    key_file_fixture,
    vault_fixture,
)

from lib import store
from lib.console import Console, NotPermitted, Role, binding, bulk_import, checks, settings
from lib.console import operators as ops
from lib.console.errors import LastAdmin, SetupAlreadyDone
from lib.console.passwords import hash_password, verify_password
from lib.secret import Secret
from lib.store.models import AuditAction

FIXTURES = (database_url_fixture, engine_fixture, key_file_fixture, vault_fixture, sim_env_fixture)
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
STUB_HASH = "$argon2id$v=19$m=65536,t=3,p=4$stub"  # stored as given; never verified here
IMPORT_FILE = (
    "label,api_key,api_secret,passphrase,scopes\n"
    f"sneaky,{OPEN_TRADER.api_key},{OPEN_TRADER.api_secret.reveal()},"
    f"{OPEN_TRADER.passphrase.reveal()},spot\n"
).encode()
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(name="console")
def console_fixture(engine, vault) -> Console:
    """Return a console (acting from the command line, an admin) on a fresh database."""
    return Console(engine, vault)


def audit(console: Console, action: AuditAction) -> list[store.AuditEntry]:
    """Return the audit events of one kind, newest first."""
    with console.reading() as session:
        return store.audit_log(session, action=action)


def race(*calls: Callable[[], object]) -> list[object]:
    """Run the calls at once in threads; return each one's result or exception."""
    results: list[object] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # the losers' errors are the point
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# --- Passwords --------------------------------------------------------------------------------


def test_a_password_is_stored_as_argon2id_at_owasp_strength_or_more() -> None:
    stored = hash_password(Secret(PASSWORD))
    parameters = extract_parameters(stored)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    # OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    assert parameters.memory_cost >= 19 * 1024 and parameters.time_cost >= 2
    assert hash_password(Secret(PASSWORD)) != stored  # salted
    assert verify_password(stored, Secret(PASSWORD))
    assert not verify_password(stored, Secret(PASSWORD + "!"))
    assert not verify_password(None, Secret(PASSWORD))


# --- The first admin ----------------------------------------------------------------------------


def test_two_setups_racing_make_exactly_one_admin(console: Console) -> None:
    assert ops.setup_needed(console)
    results = race(
        *(lambda n=n: ops.create_first_admin(console, f"admin{n}", PASSWORD) for n in range(4))
    )

    assert sum(isinstance(r, str) for r in results) == 1
    assert all(isinstance(r, SetupAlreadyDone) for r in results if not isinstance(r, str))
    [admin] = ops.list_operators(console)
    assert admin.role is Role.ADMIN and not ops.setup_needed(console)
    [token] = [r for r in results if isinstance(r, str)]
    assert ops.signed_in(console, ops.session_id(token)).name == admin.name
    with pytest.raises(SetupAlreadyDone):
        ops.create_first_admin(console, "late", PASSWORD)


def _waiting_on_a_lock(console: Console) -> bool:
    """Return whether a transaction waits on another's lock (PostgreSQL; SQLite waits unseen)."""
    if console.engine.dialect.name != "postgresql":
        return True
    with console.engine.connect() as connection:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return connection.exec_driver_sql(query).scalar_one() > 0


def held_up(
    console: Console, first: Callable[[Session], object], second: Callable[[], object]
) -> object:
    """Run `first` in a transaction held open until `second` waits on it; return second's outcome.

    Under PostgreSQL's READ COMMITTED the second call sees none of the first's rows, then waits
    on its lock; SQLite's second writer queues on BEGIN IMMEDIATE and sees them.
    """
    written, commit = threading.Event(), threading.Event()
    outcome: list[object] = []

    def hold() -> None:
        with console.transaction() as session:
            first(session)
            written.set()
            commit.wait(timeout=30)

    def call() -> None:
        try:
            outcome.append(second())
        except Exception as error:  # the error is the point
            outcome.append(error)

    holder, caller = threading.Thread(target=hold), threading.Thread(target=call)
    holder.start()
    assert written.wait(timeout=30)
    caller.start()
    deadline = time.monotonic() + 30
    while not _waiting_on_a_lock(console) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # SQLite: the second call queues meanwhile
    commit.set()
    holder.join(timeout=60)
    caller.join(timeout=60)
    [result] = outcome
    return result


def test_a_setup_held_up_by_another_gets_setup_already_done(console: Console) -> None:
    """The loser saw no admin yet, then waited on the winner's insert: not a database error."""
    result = held_up(
        console,
        lambda session: store.add_operator(
            session,
            name="first",
            password_hash=STUB_HASH,
            role=Role.ADMIN,
            actor="first",
            first_admin=True,
        ),
        lambda: ops.create_first_admin(console, "second", PASSWORD),
    )
    assert isinstance(result, SetupAlreadyDone), repr(result)
    assert [o.name for o in ops.list_operators(console)] == ["first"]


def test_two_admins_adding_one_name_at_once_add_it_once(console: Console) -> None:
    ops.add_operator(console, "root", PASSWORD, Role.ADMIN)
    result = held_up(
        console,
        lambda session: store.add_operator(
            session, name="ana", password_hash=STUB_HASH, role=Role.VIEWER, actor="root"
        ),
        lambda: ops.add_operator(console, "ana", PASSWORD, Role.ADMIN),
    )
    assert isinstance(result, store.InvalidInput), repr(result)
    assert "exists already" in str(result)
    assert [(o.name, o.role) for o in ops.list_operators(console)] == [
        ("ana", Role.VIEWER),
        ("root", Role.ADMIN),
    ]


def test_the_first_operator_must_be_an_admin_and_ends_the_setup(console: Console) -> None:
    with pytest.raises(store.InvalidInput, match="first operator must be an admin"):
        ops.add_operator(console, "viola", PASSWORD, Role.VIEWER)
    ops.add_operator(console, "Ana", PASSWORD, Role.ADMIN)
    assert not ops.setup_needed(console)
    with pytest.raises(SetupAlreadyDone):
        ops.create_first_admin(console, "eve", PASSWORD)
    assert [o.name for o in ops.list_operators(console)] == ["ana"]


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("a b", PASSWORD, "An operator name is"),
        ("-ana", PASSWORD, "An operator name is"),
        ("ana", "short", "A password has 12 to 1024"),
        ("ana", "x" * 1025, "A password has 12 to 1024"),
    ],
)
def test_a_bad_name_or_password_is_refused_saying_what_to_fix(
    console: Console, name: str, password: str, message: str
) -> None:
    with pytest.raises(store.InvalidInput, match=message):
        ops.add_operator(console, name, password, Role.ADMIN)
    assert ops.list_operators(console) == []


def test_the_last_admin_can_be_neither_removed_nor_made_a_viewer(console: Console) -> None:
    ops.add_operator(console, "ana", PASSWORD, Role.ADMIN)
    ops.add_operator(console, "ben", PASSWORD, Role.VIEWER)
    with pytest.raises(LastAdmin):
        ops.remove_operator(console, "ana")
    with pytest.raises(LastAdmin):
        ops.set_role(console, "ana", Role.VIEWER)
    assert ops.set_role(console, "ben", Role.ADMIN)
    ops.remove_operator(console, "ana")
    assert [(o.name, o.role) for o in ops.list_operators(console)] == [("ben", Role.ADMIN)]


def test_two_admins_demoting_each_other_at_once_leave_one_admin(console: Console) -> None:
    ops.add_operator(console, "ana", PASSWORD, Role.ADMIN)
    ops.add_operator(console, "ben", PASSWORD, Role.ADMIN)
    results = race(
        lambda: ops.set_role(console.as_actor("ben"), "ana", Role.VIEWER),
        lambda: ops.set_role(console.as_actor("ana"), "ben", Role.VIEWER),
    )
    assert sum(isinstance(r, LastAdmin) for r in results) == 1
    assert [o.role for o in ops.list_operators(console)].count(Role.ADMIN) == 1


# --- Sessions -----------------------------------------------------------------------------------


def signed_in_as(console: Console, name: str, role: Role = Role.ADMIN) -> str:
    """Add an operator and sign them in; return the session token."""
    ops.add_operator(console, name, PASSWORD, role)
    result = ops.sign_in(console, name, PASSWORD)
    assert result.ok
    return result.token


def test_a_session_ends_when_idle_or_too_old_and_is_stored_only_as_a_hash(console) -> None:
    token = signed_in_as(console, "ana")
    session = ops.session_id(token)
    with console.reading() as reading:
        assert store.get_session(reading, token) is None  # the token itself is not an id
    now = datetime.now(UTC)
    assert ops.signed_in(console, session, now=now + ops.SESSION_IDLE / 2) is not None
    # Used at idle/2: the idle clock restarted then.
    assert ops.signed_in(console, session, now=now + ops.SESSION_IDLE * 1.2) is not None
    assert ops.signed_in(console, session, now=now + ops.SESSION_IDLE * 2.5) is None
    assert ops.signed_in(console, session) is None  # ended for good
    assert audit(console, AuditAction.LOGOUT)[0].details["reason"] == "idle"

    late = ops.session_id(ops.sign_in(console, "ana", PASSWORD).token)
    busy = datetime.now(UTC)
    end = busy + ops.SESSION_LIFETIME
    while busy < end - timedelta(minutes=1):  # used every quarter hour, never idle
        assert ops.signed_in(console, late, now=busy) is not None
        busy += ops.SESSION_IDLE / 2
    assert ops.signed_in(console, late, now=end + timedelta(minutes=1)) is None


def test_signing_out_removing_or_a_new_password_ends_sessions_and_a_role_change_applies_at_once(
    console: Console,
) -> None:
    ops.add_operator(console, "root", PASSWORD, Role.ADMIN)
    first = ops.session_id(signed_in_as(console, "ana"))
    second = ops.session_id(ops.sign_in(console, "ana", PASSWORD).token)

    assert ops.set_role(console, "ana", Role.VIEWER)
    assert ops.signed_in(console, first).role is Role.VIEWER
    assert ops.sign_out(console, first) == "ana"
    assert ops.signed_in(console, first) is None and ops.signed_in(console, second) is not None

    assert ops.set_password(console, "ana", "another long password") == 1
    assert ops.signed_in(console, second) is None
    assert not ops.sign_in(console, "ana", PASSWORD).ok
    third = ops.session_id(ops.sign_in(console, "ana", "another long password").token)
    ops.remove_operator(console, "ana")
    assert ops.signed_in(console, third) is None


# --- Failed sign-ins ----------------------------------------------------------------------------


def test_failures_make_a_name_wait_longer_each_time_and_each_checked_one_is_audited(
    console: Console,
) -> None:
    ops.add_operator(console, "ana", PASSWORD, Role.ADMIN)
    now, waits = T0, []
    for _ in range(10):  # ten wrong passwords in a row, each as soon as allowed
        result = ops.sign_in(console, "ana", "wrong password!", address="192.0.2.7", now=now)
        assert not result.ok
        if result.wait_seconds:
            waits.append(result.wait_seconds)
            now += timedelta(seconds=result.wait_seconds)
            after = ops.sign_in(console, "ana", "wrong password!", address="192.0.2.7", now=now)
            assert not after.ok and not after.wait_seconds
    failures = audit(console, AuditAction.FAILED_LOGIN)
    assert len(waits) == 10 - ops.FREE_FAILURES_PER_NAME
    assert waits == sorted(waits) and waits[-1] >= 4 * waits[0], waits
    assert len(failures) == 10  # each checked attempt; a refusal to check is not audited
    assert failures[0].details == {"name": "ana", "reason": "wrong password", "from": "192.0.2.7"}
    # Waiting, even the right password is not checked; once the wait is over it is.
    assert ops.sign_in(console, "ana", PASSWORD, now=now).wait_seconds
    later = now + ops.NAME_WAIT_CAP
    assert ops.sign_in(console, "ana", PASSWORD, now=later).ok
    assert ops.sign_in(console, "ana", "wrong password!", now=later).wait_seconds == 0  # forgiven


def test_a_script_sending_many_guesses_at_once_gets_a_few_checked(console: Console) -> None:
    ops.add_operator(console, "ana", PASSWORD, Role.ADMIN)
    results = race(*(lambda: ops.sign_in(console, "ana", "guess guess guess") for _ in range(12)))
    assert all(not r.ok for r in results)
    checked = [r for r in results if not r.wait_seconds]
    assert len(checked) <= ops.FREE_FAILURES_PER_NAME + 1
    assert len(audit(console, AuditAction.FAILED_LOGIN)) == len(checked)


def test_guessing_over_many_names_slows_every_name_and_the_counts_outlive_a_restart(
    engine, vault
) -> None:
    console = Console(engine, vault)
    ops.add_operator(console, "ana", PASSWORD, Role.ADMIN)
    for n in range(ops.FREE_FAILURES_OVERALL):
        assert not ops.sign_in(console, f"user{n}", "guess guess guess", now=T0).wait_seconds
    assert [a.details["reason"] for a in audit(console, AuditAction.FAILED_LOGIN)][:1] == [
        "no such operator"
    ]
    restarted = Console(store.database.open_database(engine.url), vault)  # a new process
    assert ops.sign_in(restarted, "user-new", "guess guess guess", now=T0).wait_seconds
    assert ops.sign_in(restarted, "ana", PASSWORD, now=T0).wait_seconds  # everyone waits
    assert ops.sign_in(restarted, "ana", PASSWORD, now=T0 + ops.OVERALL_WAIT_CAP).ok
    restarted.close()


# --- Roles: the services refuse a viewer --------------------------------------------------------


def viewer_calls(console: Console, account_id: int) -> dict[str, Callable[[], object]]:
    """Return every action a page offers, each called directly as the given console."""
    secrets = {
        "api_key": OPEN_TRADER.api_key,
        "api_secret": OPEN_TRADER.api_secret.reveal(),
        "passphrase": OPEN_TRADER.passphrase.reveal(),
    }
    return {
        "bind": lambda: binding.bind(console, label="sneaky", **secrets),
        "check a key": lambda: binding.check_key(console, label="sneaky", scopes="spot", **secrets),
        "save a checked key": lambda: binding.save(console, "any-token"),
        "preview an import": lambda: bulk_import.preview_import(console, IMPORT_FILE),
        "confirm an import": lambda: bulk_import.confirm_import(console, "any-token"),
        "rotate": lambda: binding.bind(console, label="", account_id=account_id, **secrets),
        "re-scope": lambda: binding.set_scopes(console, account_id, ["spot", "margin"]),
        "pause": lambda: binding.pause(console, account_id),
        "resume": lambda: binding.resume(console, account_id),
        "unbind": lambda: binding.unbind(console, account_id),
        "settings": lambda: settings.save_settings(console, rotation_age_days=30),
        "check now": lambda: checks.check_account(console, account_id),
        "refresh all": lambda: checks.refresh_fleet(console),
        "add operator": lambda: ops.add_operator(console, "mallory", PASSWORD, Role.ADMIN),
        "make admin": lambda: ops.set_role(console, "viewer", Role.ADMIN),
        "remove operator": lambda: ops.remove_operator(console, "admin"),
        "set password": lambda: ops.set_password(console, "admin", "taken over password"),
    }


def test_a_viewer_is_refused_every_action_by_the_services_and_nothing_changes(
    sim_env: SimEnv,
) -> None:
    admin = sim_env.console
    ops.add_operator(admin, "admin", PASSWORD, Role.ADMIN)
    ops.add_operator(admin, "viewer", PASSWORD, Role.VIEWER)
    account_id = binding.bind(
        admin,
        label="desk",
        api_key=TRADER.api_key,
        api_secret=TRADER.api_secret.reveal(),
        passphrase=TRADER.passphrase.reveal(),
    ).account_id
    with admin.reading() as session:
        before = store.audit_log(session)
    asked = len(sim_env.requests)
    viewer = admin.as_actor("viewer", Role.VIEWER)

    for action, call in viewer_calls(viewer, account_id).items():
        with pytest.raises(NotPermitted, match="only an admin may"):
            call()
        assert action  # named in the failure report

    with admin.reading() as session:
        assert store.audit_log(session) == before
    assert len(sim_env.requests) == asked  # KuCoin was never called
    assert [(o.name, o.role) for o in ops.list_operators(admin)] == [
        ("admin", Role.ADMIN),
        ("viewer", Role.VIEWER),
    ]


def test_a_console_whose_session_ended_or_was_demoted_is_refused(sim_env: SimEnv) -> None:
    admin = sim_env.console
    ops.add_operator(admin, "root", PASSWORD, Role.ADMIN)
    token = signed_in_as(admin, "ana")
    session = ops.session_id(token)

    def role_now() -> Role | None:
        still = ops.signed_in(admin, session)
        return None if still is None else still.role

    # The page was drawn for an admin; the operator's role is asked again at the action.
    page = admin.as_actor("ana", Role.ADMIN, role_now)
    assert settings.save_settings(page, rotation_age_days=60).rotation_age_days == 60
    ops.set_role(admin, "ana", Role.VIEWER)
    with pytest.raises(NotPermitted, match="viewer"):
        settings.save_settings(page, rotation_age_days=30)
    ops.sign_out(admin, session)
    with pytest.raises(NotPermitted, match="has ended"):
        settings.save_settings(page, rotation_age_days=30)
    assert admin.settings().rotation_age_days == 60


def test_every_audit_row_names_the_operator_who_acted(sim_env: SimEnv) -> None:
    ops.add_operator(sim_env.console, "ana", PASSWORD, Role.ADMIN)
    ana = sim_env.console.as_actor("ana")
    account_id = binding.bind(
        ana,
        label="desk",
        api_key=TRADER.api_key,
        api_secret=TRADER.api_secret.reveal(),
        passphrase=TRADER.passphrase.reveal(),
    ).account_id
    binding.pause(ana, account_id)
    settings.save_settings(ana, rotation_age_days=45)
    with sim_env.console.reading() as session:
        events = store.audit_log(session)
    assert {e.actor for e in events if e.action != "add_operator"} == {"ana"}


# --- Single sign-on -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "verified", "role"),
    [
        ("ana@example.com", True, Role.ADMIN),
        ("Ana@Example.com ", None, Role.ADMIN),
        ("ben@example.com", True, Role.VIEWER),
        ("both@example.com", True, Role.ADMIN),  # on both lists: the stronger role
        ("eve@example.com", True, None),
        ("ben@example.com", False, None),  # the provider did not verify it
        (None, True, None),
    ],
)
def test_single_sign_on_maps_an_allowed_email_to_its_role(email, verified, role) -> None:
    allowed = {
        "admin": ["ana@example.com", "both@example.com"],
        "viewer": ["BEN@example.com", "both@example.com"],
    }
    assert ops.sso_role(email, allowed, verified=verified) is role


# --- The command line -------------------------------------------------------------------------


def lib_command(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run `python -m lib ARGS` over a data directory, stdin given; return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "lib", *args],
        cwd=ROOT,
        env={"BINDWATCH_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_operators_command_adds_lists_changes_passwords_and_keeps_the_last_admin(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    viewer_first = lib_command(data, "operators", "add", "ben", "--role", "viewer", stdin="x" * 20)
    assert viewer_first.returncode == 2 and "must be an admin" in viewer_first.stderr
    added = lib_command(data, "operators", "add", "Ana", "--role", "admin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert (
        lib_command(data, "operators", "add", "ben", "--role", "viewer", stdin="short\n").returncode
        == 2
    )
    lib_command(data, "operators", "add", "ben", "--role", "viewer", stdin=PASSWORD + "\n")
    listed = lib_command(data, "operators", "list")
    assert listed.returncode == 0
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:]] == [
        ["ana", "admin"],
        ["ben", "viewer"],
    ]
    refused = lib_command(data, "operators", "remove", "ana")
    assert refused.returncode == 1 and "only admin" in refused.stderr
    changed = lib_command(data, "operators", "passwd", "ben", stdin="a new password here\n")
    assert changed.returncode == 0, changed.stderr
    assert lib_command(data, "operators", "passwd", "nobody").returncode == 1
    assert lib_command(data, "operators", "remove", "ben").returncode == 0
    # A password on the command line is not an option: argv is visible to every process.
    on_argv = lib_command(data, "operators", "add", "cy", "--role", "admin", "--password", "x")
    assert on_argv.returncode == 2 and "unrecognized arguments" in on_argv.stderr
    for done in (added, changed, listed):
        assert PASSWORD not in done.stdout + done.stderr

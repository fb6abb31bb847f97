"""Four processes writing one SQLite file at once: every transaction lands, none is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import func, select
from store_fixtures import key_file_fixture, sqlite_url_fixture

from lib import store
from lib.store import database
from lib.store.models import Account, AuditAction, AuditEvent, Credential
from lib.vault import open_vault

FIXTURES = (key_file_fixture, sqlite_url_fixture)
REPO = Path(__file__).resolve().parent.parent
PROCESSES = 4
TRANSACTIONS = 250

# Each writer binds TRANSACTIONS accounts, one transaction each (a read, then writes: the case
# that fails at once under a deferred BEGIN). The reader checks that it never sees an account
# without its credential and audit row.
WORKER = r"""
import json, sys, time
from pathlib import Path
from sqlalchemy.exc import OperationalError
from sqlmodel import select
from lib import store
from lib.store import database
from lib.kucoin.auth import Credentials
from lib.store.models import Account, AuditEvent, Credential
from lib.vault import open_vault

url, key_file, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[5])
worker, count = int(sys.argv[3]), int(sys.argv[4])
engine = database.open_database(url)
vault = open_vault(engine, key_file)
while not go.exists():
    time.sleep(0.001)
result = {"committed": 0, "locked": 0, "errors": [], "partial": 0, "reads": 0}
if worker < 0:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not Path(str(go) + ".done").exists():
        with database.read_session(engine) as s:
            accounts = set(s.exec(select(Account.id)).all())
            creds = set(s.exec(select(Credential.account_id)).all())
            audited = set(s.exec(select(AuditEvent.account_id)).all())
        result["partial"] += len(accounts ^ creds) + len(accounts - audited)
        result["reads"] += 1
else:
    for n in range(count):
        try:
            with database.transaction(engine) as s:
                store.create_account_with_credentials(
                    s, vault, label=f"w{worker}-{n}",
                    credentials=Credentials(f"key-{worker}-{n:05d}", f"sec-{worker}-{n}", "pp"),
                    scopes=["spot"], actor=f"worker-{worker}",
                )
            result["committed"] += 1
        except OperationalError as exc:
            if "locked" in str(exc):
                result["locked"] += 1
            else:
                result["errors"].append(str(exc)[:200])
print(json.dumps(result))
"""


@pytest.mark.slow
def test_four_processes_write_one_thousand_transactions_without_a_lock_error(
    sqlite_url, key_file, tmp_path
):
    engine = database.open_database(sqlite_url)
    open_vault(engine, key_file)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                sqlite_url,
                str(key_file),
                str(w),
                str(TRANSACTIONS),
                str(go),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in [*range(PROCESSES), -1]
    ]
    time.sleep(1.5)  # let every process import and open the database before the start signal
    go.touch()
    started = time.monotonic()
    writers = []
    for proc in procs[:-1]:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        writers.append(json.loads(out))
    elapsed = time.monotonic() - started
    Path(f"{go}.done").touch()
    out, err = procs[-1].communicate(timeout=120)
    assert procs[-1].returncode == 0, err
    reader = json.loads(out)

    assert sum(w["locked"] for w in writers) == 0
    assert [w["errors"] for w in writers] == [[]] * PROCESSES
    assert sum(w["committed"] for w in writers) == PROCESSES * TRANSACTIONS
    with database.read_session(engine) as session:
        for table in (Account, Credential, AuditEvent):
            assert session.exec(select(func.count()).select_from(table)).one() == 1000
        assert session.exec(select(func.count(func.distinct(Credential.fingerprint)))).one() == 1000
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    engine.dispose()
    assert reader["reads"] > 0 and reader["partial"] == 0
    print(f"{PROCESSES * TRANSACTIONS} transactions from {PROCESSES} processes in {elapsed:.1f}s")


def test_a_write_survives_another_engine_in_the_process_and_a_command_closing_the_file(
    tmp_path,
):
    # The server's console and its watcher each open the file in one process; a command then
    # opens and closes it from another process. The server's next write must land in the file.
    url = f"sqlite:///{tmp_path / 'bindwatch.db'}"
    server = database.open_database(url)
    with database.transaction(server) as session:
        session.exec(select(func.count()).select_from(AuditEvent)).one()
    database.open_database(url).dispose()  # the watcher's engine, in the same process
    count = (
        "import sys; from sqlalchemy import text; from lib.store import database; "
        "e = database.open_database(sys.argv[1]); "
        "print(e.connect().execute(text('SELECT count(*) FROM audit_events')).scalar()); "
        "e.dispose()"
    )
    command = [sys.executable, "-c", count, url]
    subprocess.run(command, cwd=REPO, check=True, timeout=60, capture_output=True)
    with database.transaction(server) as session:
        store.record_audit(session, actor="server", action=AuditAction.LOGIN)
    seen = subprocess.run(command, cwd=REPO, check=True, timeout=60, capture_output=True)
    server.dispose()
    assert seen.stdout.split() == [b"1"], "the write went into a WAL another process deleted"

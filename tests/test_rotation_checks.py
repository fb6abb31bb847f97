"""A master key rotation opens every stored value first: one bad row changes nothing.

On a SQLite file and on PostgreSQL: the rotation names the bad row (account and field, never a
value), leaves the key file and every row as they were, and runs once that account is unbound.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select
from store_fixtures import (
    ACTOR,
    credentials,
    database_url_fixture,
    encodings,
    engine_fixture,
    key_file_fixture,
    vault_fixture,
)

from lib import store
from lib.__main__ import main
from lib.config import DATA_DIR_ENV, DATABASE_URL_ENV, MASTER_KEY_FILE_ENV
from lib.store import database
from lib.store.models import AuditEvent, Credential, VaultKey
from lib.vault import UnreadableCredentials, UnreadableValue, open_vault, rotate_master_key

FIXTURES = (database_url_fixture, engine_fixture, key_file_fixture, vault_fixture)
MARKER = "CANARY-rotation-3b9d"
LABELS = ("alpha", "bravo", "charlie")


def bind_three(engine: Engine, vault) -> list[int]:
    with database.transaction(engine) as session:
        return [
            store.create_account_with_credentials(
                session,
                vault,
                label=label,
                credentials=credentials(n, MARKER),
                scopes=["spot"],
                actor=ACTOR,
            )
            for n, label in enumerate(LABELS)
        ]


def move_secret(engine: Engine, source: int, target: int) -> None:
    """Copy one account's encrypted secret into another's row, as a bad restore would."""
    with database.transaction(engine) as session:
        token = session.get(Credential, source).api_secret_enc
        session.execute(
            update(Credential).where(Credential.account_id == target).values(api_secret_enc=token)
        )


def everything(engine: Engine, key_file) -> dict[str, object]:
    """Return what a rotation could change: the key file, every row, the key rows, the audit."""
    with database.read_session(engine) as session:
        return {
            "key_file": key_file.read_bytes(),
            "credentials": [
                (c.account_id, c.master_key_id, c.fingerprint, c.api_key_enc)
                for c in session.exec(select(Credential).order_by(Credential.account_id)).all()
            ],
            "secrets": [
                (c.api_secret_enc, c.passphrase_enc)
                for c in session.exec(select(Credential).order_by(Credential.account_id)).all()
            ],
            "vault_keys": sorted(
                (k.key_id, k.state, k.check_value) for k in session.exec(select(VaultKey)).all()
            ),
            "audit": len(session.exec(select(AuditEvent)).all()),
        }


def command(database_url, key_file, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run a command in-process (a traceback fails the test); return (status, all output)."""
    with monkeypatch.context() as environ:
        environ.setenv(DATABASE_URL_ENV, database_url)
        environ.setenv(MASTER_KEY_FILE_ENV, str(key_file))
        environ.setenv(DATA_DIR_ENV, str(key_file.parent))
        code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def test_a_row_that_does_not_open_stops_the_rotation_before_anything_changes(
    database_url, engine, vault, key_file, monkeypatch, capsys
):
    alpha, bravo, charlie = bind_three(engine, vault)
    move_secret(engine, charlie, bravo)
    before = everything(engine, key_file)

    with pytest.raises(UnreadableCredentials) as caught:
        rotate_master_key(engine, vault, actor=ACTOR, batch_size=2)
    assert caught.value.values == (
        UnreadableValue(bravo, "bravo", "api_secret", caught.value.values[0].reason),
    )
    assert everything(engine, key_file) == before

    # The command says the same, exits 2, and a rerun still changes nothing.
    for _ in range(2):
        code, output = command(database_url, key_file, monkeypatch, capsys, "rotate-master-key")
        assert code == 2, output
        assert f"account 'bravo' (id {bravo}), api_secret" in output
        assert "alpha" not in output and "charlie" not in output
        assert "Nothing was changed" in output
        assert "python -m lib unbind" in output and "rotate-master-key` again" in output
        for form in encodings(MARKER):
            assert form.decode("latin-1") not in output
        assert everything(engine, key_file) == before

    # The way out the message offers: unbind that account, then rotate.
    code, output = command(database_url, key_file, monkeypatch, capsys, "unbind", "bravo", "--yes")
    assert code == 0, output
    code, output = command(database_url, key_file, monkeypatch, capsys, "rotate-master-key")
    assert code == 0, output
    assert "re-encrypted 2/2 credentials" in output
    fresh = open_vault(engine, key_file)
    with database.read_session(engine) as session:
        for n, account_id in ((0, alpha), (2, charlie)):
            assert store.load_credentials(session, fresh, account_id) == credentials(n, MARKER)
        keys = {c.master_key_id for c in session.exec(select(Credential)).all()}
    assert keys == {fresh.active_key_id} != {before["credentials"][0][1]}

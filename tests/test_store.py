"""The store on SQLite and PostgreSQL: binding, lifecycle, checks, settings, audit, frames."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlmodel import select
from store_fixtures import (
    ACTOR,
    credentials,
    database_url_fixture,
    engine_fixture,
    key_file_fixture,
    probe,
    vault_fixture,
)

from lib import store
from lib.account_fields import clean_scopes, label_problem
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import Outcome
from lib.secret import Secret
from lib.store import database, frames
from lib.store.models import AuditAction, Credential, SettingRow, Settings, VaultKey
from lib.vault import (
    DecryptionError,
    KeyState,
    RetiredKeyError,
    VaultError,
    credential_place,
    open_vault,
    rotate_master_key,
)

FIXTURES = (database_url_fixture, engine_fixture, key_file_fixture, vault_fixture)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def bind(engine, vault, n: int = 1, *, label: str | None = None, **kwargs) -> int:
    with database.transaction(engine) as session:
        return store.create_account_with_credentials(
            session,
            vault,
            label=label or f"acct-{n}",
            credentials=kwargs.pop("creds", None) or credentials(n),
            scopes=kwargs.pop("scopes", ["spot"]),
            actor=ACTOR,
            **kwargs,
        )


def audit(engine, account_id: int | None = None) -> list[store.AuditEntry]:
    with database.read_session(engine) as session:
        return store.audit_log(session, account_id=account_id)


def credential_row(engine, account_id: int) -> Credential | None:
    with database.read_session(engine) as session:
        return session.get(Credential, account_id)


# --- binding -------------------------------------------------------------------------------------


def test_bind_then_load_returns_the_same_credentials(engine, vault):
    account_id = bind(engine, vault, 1)
    with database.read_session(engine) as session:
        loaded = store.load_credentials(session, vault, account_id)
        view = store.get_account(session, account_id)
    assert loaded == credentials(1)
    assert isinstance(loaded.api_secret, Secret)
    assert view.label == "acct-1"
    assert view.scopes == ("spot",)
    assert view.key_last4 == "abcd"
    assert view.unverified is True
    assert view.exchange == "kucoin"
    assert view.created_by == ACTOR
    assert view.created_at.tzinfo is not None


def test_stored_columns_hold_only_ciphertext(engine, vault):
    account_id = bind(engine, vault, 1)
    row = credential_row(engine, account_id)
    plain = credentials(1)
    assert row.api_key_enc.startswith(f"v1:{vault.active_key_id}:")
    assert plain.api_key not in row.api_key_enc
    assert plain.api_secret.reveal() not in row.api_secret_enc
    assert row.master_key_id == vault.active_key_id
    assert row.fingerprint.startswith(f"{vault.active_key_id}:")
    assert row.key_last4 == plain.api_key[-4:]


def test_bind_with_a_passing_check_is_verified_and_stores_the_check(engine, vault):
    account_id = bind(engine, vault, 1, probe=probe())
    with database.read_session(engine) as session:
        assert store.get_account(session, account_id).unverified is False
        assert store.probe_history(session, account_id) == [probe()]


def test_bind_with_a_failing_check_is_unverified(engine, vault):
    account_id = bind(engine, vault, 1, probe=probe(Outcome.REJECTED))
    with database.read_session(engine) as session:
        assert store.get_account(session, account_id).unverified is True


def test_binding_a_bound_key_again_names_the_account_that_holds_it(engine, vault):
    bind(engine, vault, 1, label="desk A")
    twin = Credentials(credentials(1).api_key, "other secret", "other passphrase")
    with pytest.raises(store.DuplicateKeyError) as caught, database.transaction(engine) as session:
        store.create_account_with_credentials(
            session, vault, label="desk B", credentials=twin, scopes=["spot"], actor=ACTOR
        )
    assert caught.value.label == "desk A"
    assert "'desk A'" in str(caught.value)
    with database.read_session(engine) as session:
        assert [a.label for a in store.list_accounts(session)] == ["desk A"]


def test_a_taken_label_is_refused(engine, vault):
    bind(engine, vault, 1, label="desk A")
    with pytest.raises(store.DuplicateLabelError, match="desk A"):
        bind(engine, vault, 2, label="desk A")


@pytest.mark.parametrize(
    ("creds", "message"),
    [
        (Credentials("", "s", "p"), "API key is empty"),
        (Credentials("k", "", "p"), "API secret is empty"),
        (Credentials("k", "s", ""), "API passphrase is empty"),
        (Credentials("k", "line\nbreak-SECRETVALUE", "p"), "API secret contains a control"),
        (Credentials("k", "s", "tab\tPASSVALUE"), "API passphrase contains a control"),
        (Credentials(" k", "s", "p"), "starts or ends with a space"),
        (Credentials("k", "s", "p", key_version="9"), "Key version"),
    ],
)
def test_bad_credentials_are_refused_without_echoing_them(engine, vault, creds, message):
    with pytest.raises(store.InvalidInput) as caught, database.transaction(engine) as session:
        store.create_account_with_credentials(
            session, vault, label="x", credentials=creds, scopes=["spot"], actor=ACTOR
        )
    assert message in str(caught.value)
    assert "SECRETVALUE" not in str(caught.value) and "PASSVALUE" not in str(caught.value)


def test_unknown_scope_is_refused(engine, vault):
    with pytest.raises(store.InvalidInput, match="options"):
        bind(engine, vault, 1, scopes=["options"])


@pytest.mark.parametrize("scopes", [[], ["", " "]])
def test_no_scope_is_refused_as_binding_refuses_it(engine, vault, scopes):
    with pytest.raises(store.InvalidInput) as caught:
        bind(engine, vault, 1, scopes=scopes)
    with pytest.raises(ValueError) as owner:
        clean_scopes(scopes)
    assert str(caught.value) == str(owner.value).capitalize() + "."
    account_id = bind(engine, vault, 2)
    with pytest.raises(store.InvalidInput, match="at least one scope"):
        with database.transaction(engine) as session:
            store.set_scopes(session, account_id, [], actor=ACTOR)


@pytest.mark.parametrize("label", ["**bold**", "a\u200bb", "x" * 201, "   "])
def test_a_label_binding_refuses_is_refused_with_binding_s_message(engine, vault, label):
    with pytest.raises(store.InvalidInput) as caught:
        bind(engine, vault, 1, label=label)
    assert str(caught.value) == label_problem(label.strip())


def test_a_pasted_zero_width_space_is_a_control_character_to_the_store(engine, vault):
    creds = Credentials("key\u200b1", "s", "p")
    with pytest.raises(store.InvalidInput, match="API key contains a control character"):
        bind(engine, vault, 1, creds=creds)


def test_find_account_by_api_key(engine, vault):
    account_id = bind(engine, vault, 3)
    with database.read_session(engine) as session:
        assert (
            store.find_account_by_api_key(session, vault, credentials(3).api_key).id == account_id
        )
        assert store.find_account_by_api_key(session, vault, "not-bound") is None


# --- lifecycle -----------------------------------------------------------------------------------


def test_rotate_credentials_replaces_in_place_and_audits(engine, vault):
    account_id = bind(engine, vault, 1, probe=probe())
    before = credential_row(engine, account_id)
    new = credentials(2)
    with database.transaction(engine) as session:
        store.rotate_credentials(session, vault, account_id, new, actor="bob")
    after = credential_row(engine, account_id)
    assert after.api_secret_enc != before.api_secret_enc
    assert after.rotated_by == "bob" and after.rotated_at is not None
    assert after.created_at == before.created_at
    with database.read_session(engine) as session:
        assert store.load_credentials(session, vault, account_id) == new
        assert store.get_account(session, account_id).unverified is True
        assert store.find_account_by_api_key(session, vault, credentials(1).api_key) is None
    entry = audit(engine, account_id)[0]
    assert entry.action == AuditAction.ROTATE_CREDENTIAL
    assert entry.details["old_key_last4"] == before.key_last4
    assert entry.actor == "bob"


def test_rotating_to_a_key_another_account_holds_is_refused(engine, vault):
    first = bind(engine, vault, 1, label="one")
    bind(engine, vault, 2, label="two")
    with (
        pytest.raises(store.DuplicateKeyError, match="'two'"),
        database.transaction(engine) as session,
    ):
        store.rotate_credentials(session, vault, first, credentials(2), actor=ACTOR)


def test_scopes_pause_resume_verify_each_write_one_audit_row(engine, vault):
    account_id = bind(engine, vault, 1)
    with database.transaction(engine) as session:
        assert store.set_scopes(session, account_id, ["futures", "spot"], actor=ACTOR)
        assert not store.set_scopes(session, account_id, ["spot", "futures"], actor=ACTOR)
        assert store.pause(session, account_id, actor=ACTOR, reason="maintenance")
        assert not store.pause(session, account_id, actor=ACTOR)
        assert store.resume(session, account_id, actor=ACTOR)
        assert store.mark_verified(session, account_id, probe(), actor=ACTOR)
    actions = [e.action for e in reversed(audit(engine, account_id))]
    assert actions == ["bind", "change_scopes", "pause", "resume", "verify"]
    with database.read_session(engine) as session:
        view = store.get_account(session, account_id)
        assert view.scopes == ("spot", "futures")
        assert view.paused is False and view.unverified is False
        assert len(store.probe_history(session, account_id)) == 1
    changed = audit(engine, account_id)[-2]
    assert changed.details == {"from": ["spot"], "to": ["spot", "futures"]}


def test_a_failing_verification_keeps_the_account_unverified(engine, vault):
    account_id = bind(engine, vault, 1)
    with database.transaction(engine) as session:
        assert not store.mark_verified(session, account_id, probe(Outcome.REJECTED), actor=ACTOR)
    assert audit(engine, account_id)[0].details["outcome"] == "rejected"


def test_unbind_destroys_credentials_and_keeps_history(engine, vault):
    account_id = bind(engine, vault, 1, probe=probe())
    with database.transaction(engine) as session:
        store.unbind(session, account_id, actor="bob", reason="desk closed")
    assert credential_row(engine, account_id) is None
    with database.read_session(engine) as session:
        view = store.get_account(session, account_id)
        assert view.unbound_at is not None and not view.bound
        assert view.key_last4 is None
        assert store.list_accounts(session) == []
        assert [a.id for a in store.list_accounts(session, include_unbound=True)] == [account_id]
        assert len(store.probe_history(session, account_id)) == 1
        with pytest.raises(store.AccountUnbound, match="Bind the key again"):
            store.load_credentials(session, vault, account_id)
        with pytest.raises(store.AccountUnbound):
            store.pause(session, account_id, actor=ACTOR)
    assert [e.action for e in audit(engine, account_id)] == ["unbind", "bind"]
    # The key is free again once unbound.
    bind(engine, vault, 1, label="rebound")


def test_unknown_account_is_reported(engine, vault):
    with (
        database.read_session(engine) as session,
        pytest.raises(store.AccountNotFound, match="999"),
    ):
        store.load_credentials(session, vault, 999)


# --- probe results -------------------------------------------------------------------------------


def test_probe_result_round_trips_exactly(engine, vault):
    account_id = bind(engine, vault, 1)
    original = probe()
    empty = probe(
        Outcome.UNREACHABLE,
        at=T0 + timedelta(seconds=1),
        permissions=(),
        ip_whitelist=None,
        is_master=None,
        key_created_at=None,
        spot_balances=(),
        futures={},
        futures_permission_missing=True,
        vip_level=None,
    )
    with database.transaction(engine) as session:
        store.record_probe(session, account_id, original)
        store.record_probe(session, account_id, empty)
    with database.read_session(engine) as session:
        newest, oldest = store.probe_history(session, account_id)
        assert store.latest_probe(session, account_id) == empty
    assert newest == empty
    assert oldest == original
    assert oldest.spot_balances[0].balance == original.spot_balances[0].balance
    assert str(oldest.futures["USDT"]["accountEquity"]) == "99.990000001"
    assert oldest.checked_at.tzinfo is not None


def test_probe_history_newest_first_with_limit(engine, vault):
    account_id = bind(engine, vault, 1)
    with database.transaction(engine) as session:
        store.record_probes(
            session, [(account_id, probe(at=T0 + timedelta(hours=h))) for h in (2, 0, 1)]
        )
    with database.read_session(engine) as session:
        history = store.probe_history(session, account_id, limit=2)
    assert [r.checked_at for r in history] == [T0 + timedelta(hours=2), T0 + timedelta(hours=1)]


def test_naive_times_are_refused(engine, vault):
    account_id = bind(engine, vault, 1)
    with pytest.raises(sa.exc.StatementError), database.transaction(engine) as session:
        store.record_probe(session, account_id, probe(at=datetime(2026, 1, 1)))


# --- frames ----------------------------------------------------------------------------------


def _fleet(engine, vault, accounts: int = 3, checks: int = 4) -> list[int]:
    ids = [bind(engine, vault, n, scopes=["spot", "margin"][: n % 2 + 1]) for n in range(accounts)]
    with database.transaction(engine) as session:
        store.record_probes(
            session,
            [
                (
                    account_id,
                    probe(Outcome.OK if h % 2 else Outcome.REJECTED, at=T0 + timedelta(hours=h)),
                )
                for account_id in ids
                for h in range(checks)
            ],
        )
    return ids


def test_accounts_frame_has_typed_columns(engine, vault):
    ids = _fleet(engine, vault)
    with database.transaction(engine) as session:
        store.unbind(session, ids[0], actor=ACTOR)
    with database.read_session(engine) as session:
        frame = store.accounts_frame(session)
        every = store.accounts_frame(session, include_unbound=True)
    assert list(frame["account_id"]) == ids[1:]
    assert list(every["account_id"]) == ids
    assert list(every.columns) == [
        *list(store.ACCOUNT_FRAME_COLUMNS)[:6],
        "bound",
        *list(store.ACCOUNT_FRAME_COLUMNS)[6:],
    ]
    assert str(frame["created_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["paused"].dtype == bool and frame["unverified"].dtype == bool
    assert frame["account_id"].dtype == "int64"
    assert list(every["scopes"]) == [("spot",), ("spot", "margin"), ("spot",)]
    assert list(every["bound"]) == [False, True, True]
    assert every["key_last4"].iloc[0] is None and frame["key_last4"].iloc[0] == "abcd"
    assert pd.isna(frame["credential_rotated_at"]).all()


def test_probe_history_frame_has_every_field_typed(engine, vault):
    ids = _fleet(engine, vault)
    with database.read_session(engine) as session:
        frame = store.probe_history_frame(session)
    assert len(frame) == 12
    assert list(frame.columns) == list(store.PROBE_FRAME_COLUMNS)
    assert str(frame["checked_at"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["key_created_at"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["http_status"].dtype) == "Int64"
    assert str(frame["is_master"].dtype) == "boolean"
    assert frame["futures_permission_missing"].dtype == bool
    assert frame["permissions"].iloc[0] == ("General", "Spot", "Futures")
    first = frame[frame["account_id"] == ids[0]]
    assert list(first["checked_at"]) == [pd.Timestamp(T0 + timedelta(hours=h)) for h in range(4)]
    assert first["checked_at"].iloc[0] == pd.Timestamp(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    spot, futures = store.decode_balances(frame["balances_json"].iloc[0])
    assert spot == probe().spot_balances and futures == probe().futures


def test_a_read_in_chunks_equals_one_read(engine, vault, monkeypatch):
    ids = _fleet(engine, vault, accounts=3, checks=4)
    with database.read_session(engine) as session:
        whole = store.probe_history_frame(session)
        monkeypatch.setattr(frames, "_CHUNK_ROWS", 5)  # 12 checks: chunks of 5, 5 and 2
        chunked = store.probe_history_frame(session)
        since = list(
            store.checks_since_chunks(session, T0 + timedelta(hours=2), columns=["outcome"])
        )
    pd.testing.assert_frame_equal(chunked, whole)
    assert [len(c) for c in since] == [5, 1]  # hours 2 and 3 of each account
    since = pd.concat(since)
    assert sorted(since["account_id"]) == sorted(ids * 2)
    assert list(since.columns) == ["account_id", "checked_at", "outcome"]


def test_a_history_frame_is_ordered_by_account_time_and_id_and_shares_each_text(engine, vault):
    a, b = bind(engine, vault, 1), bind(engine, vault, 2)
    hour = timedelta(hours=1)
    with database.transaction(engine) as session:
        store.record_probes(  # out of order; two of account a's at the same instant
            session,
            [
                (b, probe(at=T0 + hour)),
                (a, probe(Outcome.REJECTED, at=T0 + 2 * hour)),
                (a, probe(at=T0)),
                (b, probe(Outcome.REJECTED, at=T0)),
                (a, probe(Outcome.REJECTED, at=T0)),
            ],
        )
    with database.read_session(engine) as session:
        frame = store.probe_history_frame(session)
    ordered = frame.sort_values(["account_id", "checked_at", "probe_id"], kind="stable")
    assert list(frame["probe_id"]) == list(ordered["probe_id"])
    assert list(zip(frame["account_id"], frame["checked_at"] - pd.Timestamp(T0), strict=True)) == [
        (a, 0 * hour),
        (a, 0 * hour),
        (a, 2 * hour),
        (b, 0 * hour),
        (b, hour),
    ]
    assert list(frame["outcome"][:2]) == ["ok", "rejected"]  # the tie: in the order recorded
    # The driver makes one object per row; the frame keeps one per distinct text.
    for name in ("outcome", "code", "ip_whitelist", "sub_name"):
        texts = frame[name].dropna()
        assert len({id(text) for text in texts}) == texts.nunique() >= 1, name
    assert [c is None for c in frame["code"]] == [True, False, False, False, True]


def test_probe_history_frame_limits_each_account_to_its_newest(engine, vault):
    ids = _fleet(engine, vault, accounts=2, checks=5)
    with database.read_session(engine) as session:
        frame = store.probe_history_frame(session, per_account_limit=2)
        one = store.probe_history_frame(session, account_id=ids[1], columns=["outcome"])
    assert len(frame) == 4
    expected = [pd.Timestamp(T0 + timedelta(hours=h)) for h in (3, 4)]
    for account_id in ids:
        assert list(frame[frame["account_id"] == account_id]["checked_at"]) == expected
    assert list(one.columns) == ["account_id", "checked_at", "outcome"]
    assert set(one["account_id"]) == {ids[1]} and len(one) == 5


def test_latest_probes_frame_has_one_row_per_checked_account(engine, vault):
    ids = _fleet(engine, vault, accounts=3, checks=3)
    bind(engine, vault, 99)  # never checked: absent
    with database.read_session(engine) as session:
        latest = store.latest_probes_frame(session)
    assert list(latest["account_id"]) == ids
    assert (latest["checked_at"] == pd.Timestamp(T0 + timedelta(hours=2))).all()
    assert list(latest.columns) == list(store.PROBE_FRAME_COLUMNS)


def test_frames_of_an_empty_database_are_typed(engine, vault):
    with database.read_session(engine) as session:
        accounts = store.accounts_frame(session)
        history = store.probe_history_frame(session)
        latest = store.latest_probes_frame(session)
    assert accounts.empty and history.empty and latest.empty
    assert str(history["checked_at"].dtype) == "datetime64[ns, UTC]"
    assert str(accounts["created_at"].dtype) == "datetime64[ns, UTC]"
    assert list(history.columns) == list(store.PROBE_FRAME_COLUMNS)


# --- settings ------------------------------------------------------------------------------------


def test_settings_have_defaults_and_changes_are_audited(engine, vault):
    with database.read_session(engine) as session:
        assert store.get_settings(session) == Settings()
    defaults = Settings()
    assert defaults.freshness_seconds == 3600 and defaults.freshness_grace_seconds == 900
    assert defaults.rotation_age_days == 90 and defaults.key_version == "3"
    assert defaults.futures_currencies == ("USDT",)
    with database.transaction(engine) as session:
        updated = store.update_settings(
            session,
            actor="bob",
            egress_ips=["203.0.113.154", " 2001:db8::7 ", "203.0.113.154"],
            freshness_seconds="1800",
            futures_currencies=["usdt", "XBT"],
        )
    assert updated.egress_ips == ("203.0.113.154", "2001:db8::7")
    assert updated.freshness_seconds == 1800
    assert updated.futures_currencies == ("USDT", "XBT")
    with database.read_session(engine) as session:
        assert store.get_settings(session) == updated
    entry = audit(engine)[0]
    assert entry.action == "change_settings" and entry.actor == "bob"
    assert entry.details["freshness_seconds"] == {"from": 3600, "to": 1800}


@pytest.mark.parametrize(
    "change",
    [
        {"egress_ips": ["not-an-ip"]},
        {"freshness_seconds": 0},
        {"rotation_age_days": "soon"},
        {"key_version": "7"},
        {"futures_currencies": ["US DT"]},
        {"no_such_setting": 1},
    ],
)
def test_invalid_settings_are_refused(engine, vault, change):
    with pytest.raises(store.InvalidInput), database.transaction(engine) as session:
        store.update_settings(session, actor=ACTOR, **change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"freshness_seconds": 0}, "Freshness period must be 1 to 10,080 minutes; 0 is out"),
        ({"freshness_seconds": -300}, "Freshness period must be 1 to 10,080 minutes; -5 is out"),
        (
            {"freshness_seconds": 10_081 * 60},
            "Freshness period must be 1 to 10,080 minutes; 10,081 is out",
        ),
        ({"freshness_grace_seconds": -60}, "Grace must be 0 to 1,440 minutes; -1 is out"),
        ({"freshness_grace_seconds": 1_441 * 60}, "Grace must be 0 to 1,440 minutes; 1,441 is"),
        ({"rotation_age_days": 0}, "Rotate keys after must be 1 to 3,650 days; 0 is out"),
        (
            {"rotation_age_days": 10_000_000_000},
            "Rotate keys after must be 1 to 3,650 days; 10,000,000,000 is out of range.",
        ),
        ({"rotation_age_days": 10**40}, "Rotate keys after must be 1 to 3,650 days; the value"),
        ({"rotation_age_days": 2.5}, "Rotate keys after must be a whole number of days."),
        ({"rotation_age_days": True}, "Rotate keys after must be a whole number of days."),
        (
            {"egress_ips": [f"10.0.{n // 250}.{n % 250}" for n in range(5_001)]},
            "Egress IPs: at most 20 (KuCoin lets a key whitelist at most that many); 5,001 given.",
        ),
        (
            {"futures_currencies": [f"C{n}" for n in range(11)]},
            "Futures currencies: at most 10 (each check reads one overview per currency); 11",
        ),
    ],
)
def test_each_setting_has_a_range_and_the_message_names_field_and_range(
    engine, vault, change, message
):
    with pytest.raises(store.InvalidInput) as refused, database.transaction(engine) as session:
        store.update_settings(session, actor=ACTOR, **change)
    assert str(refused.value).startswith(message)
    with database.read_session(engine) as session:
        assert store.get_settings(session) == Settings()
    assert audit(engine) == []


def test_the_ends_of_each_range_are_accepted(engine, vault):
    ends = {
        "freshness_seconds": (60, 10_080 * 60),
        "freshness_grace_seconds": (0, 1_440 * 60),
        "rotation_age_days": (1, 3_650),
        "egress_ips": ([], [f"10.0.0.{n}" for n in range(20)]),
        "futures_currencies": ([], [f"C{n}" for n in range(10)]),
    }
    for name, values in ends.items():
        for value in values:
            with database.transaction(engine) as session:
                store.update_settings(session, actor=ACTOR, **{name: value})
            with database.read_session(engine) as session:
                stored = getattr(store.get_settings(session), name)
            assert stored == (tuple(value) if isinstance(value, list) else value)


def put_setting(engine, name: str, value: object) -> None:
    """Write a setting straight into the table, as a database from before the ranges holds it."""
    with database.transaction(engine) as session:
        session.merge(
            SettingRow(name=name, value=value, updated_at=datetime.now(UTC), updated_by="old")
        )


def test_a_stored_value_out_of_range_is_reported_and_can_be_corrected(engine, vault):
    put_setting(engine, "rotation_age_days", 10_000_000_000)
    put_setting(engine, "freshness_seconds", "hourly")
    with database.read_session(engine) as session:
        settings = store.get_settings(session)
    problems = store.invalid_settings(settings)
    assert set(problems) == {"rotation_age_days", "freshness_seconds"}
    assert "Rotate keys after must be 1 to 3,650 days" in problems["rotation_age_days"]
    assert store.setting_in_range(settings, "rotation_age_days") == 3_650
    assert store.setting_in_range(settings, "freshness_seconds") == 3_600  # not a number
    with database.transaction(engine) as session:
        store.update_settings(session, actor=ACTOR, rotation_age_days=3_650)
    assert audit(engine)[0].details == {"rotation_age_days": {"from": 10_000_000_000, "to": 3_650}}


# --- audit ---------------------------------------------------------------------------------------


def test_audit_table_refuses_update_and_delete(engine, vault):
    bind(engine, vault, 1)
    for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert [e.actor for e in audit(engine)] == [ACTOR]


def test_audit_details_refuse_a_secret(engine, vault):
    with (
        pytest.raises(TypeError, match="never hold a secret"),
        database.transaction(engine) as session,
    ):
        store.record_audit(session, actor=ACTOR, action="login", details={"p": Secret("x")})


def test_login_events_can_be_recorded(engine, vault):
    with database.transaction(engine) as session:
        store.record_audit(
            session, actor="bob", action=AuditAction.FAILED_LOGIN, details={"ip": "10.0.0.1"}
        )
        store.record_audit(session, actor="bob", action=AuditAction.LOGIN)
    assert [e.action for e in audit(engine)] == ["login", "failed_login"]


def test_a_change_and_its_audit_row_roll_back_together(engine, vault):
    account_id = bind(engine, vault, 1)
    with pytest.raises(RuntimeError), database.transaction(engine) as session:
        store.pause(session, account_id, actor=ACTOR)
        raise RuntimeError("crash before commit")
    with database.read_session(engine) as session:
        assert store.get_account(session, account_id).paused is False
    assert [e.action for e in audit(engine)] == ["bind"]


# --- tampering in the database --------------------------------------------------------------------


def _set_column(engine, account_id: int, column: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE credentials SET {column} = :v WHERE account_id = :a"),
            {"v": value, "a": account_id},
        )


def test_ciphertext_moved_between_rows_or_fields_fails(engine, vault):
    one, two = bind(engine, vault, 1), bind(engine, vault, 2)
    row_one, row_two = credential_row(engine, one), credential_row(engine, two)
    # Another row's secret pasted into this row.
    _set_column(engine, one, "api_secret_enc", row_two.api_secret_enc)
    with database.read_session(engine) as session, pytest.raises(DecryptionError):
        store.load_credentials(session, vault, one)
    # This row's passphrase pasted into its secret field.
    _set_column(engine, one, "api_secret_enc", row_one.passphrase_enc)
    with database.read_session(engine) as session, pytest.raises(DecryptionError):
        store.load_credentials(session, vault, one)
    _set_column(engine, one, "api_secret_enc", row_one.api_secret_enc)
    with database.read_session(engine) as session:
        assert store.load_credentials(session, vault, one) == credentials(1)


def test_every_bit_flip_of_a_stored_secret_is_rejected(engine, vault):
    account_id = bind(engine, vault, 1)
    original = credential_row(engine, account_id).api_secret_enc
    data = original.encode()
    rejected = 0
    with engine.connect() as conn:
        for i in range(len(data)):
            for bit in range(7):  # stays ASCII, so every database stores it as text
                flipped = bytearray(data)
                flipped[i] ^= 1 << bit
                if 0 in flipped:
                    continue
                conn.execute(
                    sa.text("UPDATE credentials SET api_secret_enc = :v WHERE account_id = :a"),
                    {"v": flipped.decode(), "a": account_id},
                )
                conn.commit()
                with database.read_session(engine) as session, pytest.raises(VaultError):
                    store.load_credentials(session, vault, account_id)
                rejected += 1
    assert rejected >= 7 * len(data) - len(data)


def test_master_key_rotation_leaves_no_row_on_the_old_key(engine, vault, key_file):
    ids = [bind(engine, vault, n) for n in range(12)]
    old_key = vault.active_key_id
    stale = credential_row(engine, ids[0]).api_secret_enc
    report = rotate_master_key(engine, vault, actor="ops", batch_size=5)
    with database.read_session(engine) as session:
        keys = {r.master_key_id for r in session.exec(select(Credential)).all()}
        fingerprints = {r.fingerprint.split(":")[0] for r in session.exec(select(Credential)).all()}
        assert keys == fingerprints == {report.new_key_id}
        fresh = open_vault(engine, key_file)
        for n, account_id in enumerate(ids):
            assert store.load_credentials(session, fresh, account_id) == credentials(n)
        # Duplicate detection keeps working with the new fingerprints.
        assert store.find_account_by_api_key(session, fresh, credentials(3).api_key).id == ids[3]
        assert {r.key_id: r.state for r in session.exec(select(VaultKey)).all()} == {
            old_key: KeyState.RETIRED,
            report.new_key_id: KeyState.ACTIVE,
        }
    entry = audit(engine)[0]
    assert entry.action == "rotate_master_key" and entry.actor == "ops"
    assert entry.details["retired_key_ids"] == [old_key]
    # An old copy of a value, restored into its own row, is refused: its key is retired.
    with pytest.raises(RetiredKeyError):
        fresh.decrypt(stale, credential_place(ids[0], "api_secret"))
    # Binding after rotation uses the new key.
    assert credential_row(engine, bind(engine, vault, 50)).master_key_id == report.new_key_id


def test_rotation_while_another_process_binds_leaves_nothing_on_the_old_key(
    engine, vault, key_file
):
    ids = [bind(engine, vault, n) for n in range(30)]
    writer_vault = open_vault(engine, key_file)  # loaded before the rotation, like another process
    old_key = vault.active_key_id
    errors: list[BaseException] = []
    done = threading.Event()

    def keep_binding() -> None:
        n = 100
        try:
            while not done.is_set() or n < 140:
                with database.transaction(engine) as session:
                    ids.append(
                        store.create_account_with_credentials(
                            session,
                            writer_vault,
                            label=f"late-{n}",
                            credentials=credentials(n),
                            scopes=["spot"],
                            actor="writer",
                        )
                    )
                n += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=keep_binding)
    thread.start()
    try:
        while len(ids) < 35:  # the writer is under way before the rotation starts
            time.sleep(0.001)
        report = rotate_master_key(engine, vault, actor="ops", batch_size=3)
    finally:
        done.set()
        thread.join(timeout=60)
    assert errors == []
    assert len(ids) >= 70
    with database.read_session(engine) as session:
        rows = session.exec(select(Credential)).all()
        assert old_key not in {r.master_key_id for r in rows}
        fresh = open_vault(engine, key_file)
        for account_id in ids:
            assert store.load_credentials(session, fresh, account_id).api_key
    assert report.retired_key_ids == (old_key,)


def test_replaced_and_unbound_ciphertext_is_gone_from_the_sqlite_file(engine, vault):
    path = database.sqlite_path(engine)
    if path is None:
        pytest.skip("about SQLite's own files")
    one, two = bind(engine, vault, 1), bind(engine, vault, 2)
    replaced = credential_row(engine, one)
    removed = credential_row(engine, two)
    with database.transaction(engine) as session:
        store.rotate_credentials(session, vault, one, credentials(3), actor=ACTOR)
        store.unbind(session, two, actor=ACTOR)
    database.checkpoint(engine)
    content = b"".join(Path(f"{path}{suffix}").read_bytes() for suffix in ("", "-wal"))
    for row in (replaced, removed):
        for token in (row.api_key_enc, row.api_secret_enc, row.passphrase_enc):
            assert token.split(":")[2].encode()[:24] not in content
    assert credential_row(engine, one).api_secret_enc.split(":")[2].encode()[:24] in content


def test_opening_a_second_engine_keeps_the_first_ones_writes_visible_to_other_processes(
    tmp_path: Path,
):
    # The served console opens its database twice (the pages and the watcher). Opening must not
    # open and close the file itself: that drops this process's SQLite locks, another process
    # then resets the WAL as if it were alone, and this process's later writes are lost to it.
    url = f"sqlite:///{tmp_path / 'bindwatch.db'}"
    first = database.open_database(url)
    with database.transaction(first) as session:
        store.update_settings(session, actor=ACTOR, freshness_seconds=45 * 60)
    second = database.open_database(url)
    read_in_another_process = (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        "print(db.execute(\"SELECT value FROM settings WHERE name = 'freshness_seconds'\")"
        ".fetchone()[0]); db.close()"
    )
    path = str(tmp_path / "bindwatch.db")
    other = [sys.executable, "-c", read_in_another_process, path]
    assert subprocess.run(other, capture_output=True, text=True, check=True).stdout.strip() == (
        "2700"
    )
    with database.transaction(first) as session:
        store.update_settings(session, actor=ACTOR, freshness_seconds=30 * 60)
    seen = subprocess.run(other, capture_output=True, text=True, check=True).stdout.strip()
    first.dispose()
    second.dispose()
    assert seen == "1800"

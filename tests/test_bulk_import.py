"""Bulk import over real HTTP to the simulator and a real SQLite file: preview, confirm, save."""

from __future__ import annotations

import gc
import json
import logging
import re
import sqlite3
import time
import uuid
from collections import Counter

import pytest
from app_fixtures import TRADER, SimEnv, sim_env_fixture  # noqa: F401 (fixture)
from import_fixtures import CANARY, bind_existing, csv_text, desk_lines, line, sim_key

from lib import store
from lib.console import binding, bulk_import
from lib.console.binding import BindingError
from lib.console.bulk_import import Verdict
from lib.console.import_file import ImportFileError, template
from lib.kucoin.auth import Credentials


def test_a_50_line_file_gets_the_right_decision_per_line_and_saves_exactly_the_right_rows(
    sim_env, caplog
):
    caplog.set_level(logging.DEBUG)
    bind_existing(sim_env)
    lines = desk_lines(sim_env.simulator, TRADER)
    assert len(lines) == 50
    data = csv_text(lines).encode()
    progress = []
    preview = bulk_import.preview_import(
        sim_env.console, data, name="desk.csv", on_progress=lambda *p: progress.append(p)
    )
    assert [p.verdict.value for p in preview.lines] == [one.verdict for one in lines]
    numbers = [p.line for p in preview.lines]
    assert numbers[:30] == list(range(2, 32))  # then the Secrets with a line break span two
    assert numbers == sorted(set(numbers)) and numbers[-1] == data.count(b"\n")
    assert progress[-1][0] == progress[-1][1] > 0
    assert binding.accounts(sim_env.console) == [
        binding.account_by_label(sim_env.console, "existing")
    ]

    summary = bulk_import.confirm_import(sim_env.console, preview.token, accept_warnings=True)
    bound = {a.label for a in binding.accounts(sim_env.console)} - {"existing"}
    expected = {binding.normal_label(one.values["label"]) for one in lines if one.bound}
    assert bound == expected
    assert summary.bound == len(expected)
    assert [s.bound for s in summary.lines] == [one.bound for one in lines]
    with sim_env.console.reading() as session:
        events = store.audit_log(session, action=store.AuditAction.BIND)
    assert {e.details["label"] for e in events} == expected | {"existing"}
    notes = {e.details["label"]: e.details.get("note") for e in events}
    assert notes["desk-39"] == "market maker, Tokyo" and notes["desk-01"] is None
    shown = preview.frame().to_csv() + summary.frame().to_csv() + caplog.text + repr(preview)
    assert CANARY not in shown
    assert CANARY not in "".join(p.cleaned + " ".join(p.details) for p in preview.lines)


def preview(env: SimEnv, text: str | bytes, name: str = "keys.csv") -> bulk_import.ImportPreview:
    """Return the preview of a file given as text (or bytes)."""
    data = text.encode() if isinstance(text, str) else text
    return bulk_import.preview_import(env.console, data, name=name)


HEADER = "label,api_key,api_secret,passphrase,scopes\n"
TRADER_LINE = (
    f"desk,{TRADER.api_key},{TRADER.api_secret.reveal()},{TRADER.passphrase.reveal()},spot\n"
)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"  \n\n", "The file is empty"),
        (HEADER.encode(), "header but no key"),
        (b"label,api_key,api_secret,scopes\n", "missing column 'passphrase'"),
        (HEADER.replace("\n", ",owner\n").encode(), "unknown column 'owner'"),
        (b"label,label,api_key,api_secret,passphrase,scopes\n", "repeated column 'label'"),
        (HEADER.replace(",", ";").encode(), "separates its columns with ';': save the file"),
        ((HEADER + "desk,\xe9t\xe9\n").encode("latin-1"), "not UTF-8 text"),
        (HEADER.encode() + b"x" * 10_000_000, "10.0 MB"),
        (b'[{"label": "desk",', "not valid JSON (line 1, column"),
        (b'{"accounts": []}', "a list of objects"),
        (HEADER.encode() + b'desk,"unterminated\n', "cannot be read as CSV"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_saying_what_to_fix(sim_env, data, message):
    with pytest.raises(ImportFileError, match=re.escape(message)):
        preview(sim_env, data)
    assert binding.accounts(sim_env.console) == [] and sim_env.requests == []


def test_a_line_with_too_many_fields_is_refused_alone_and_shows_nothing_of_it(sim_env):
    shifted = f"shifted,{TRADER.api_key},{CANARY}-secret,{CANARY},pass,spot\n"
    result = preview(sim_env, HEADER + shifted + TRADER_LINE)
    first, second = result.lines
    assert first.verdict is Verdict.REFUSED and "6 fields, the header 5" in first.details[0]
    assert (first.label, first.key_last4) == ("", "")
    assert second.verdict is Verdict.READY and second.key_last4 == TRADER.api_key[-4:]
    assert CANARY not in result.frame().to_csv()


def test_a_credential_under_the_label_or_scopes_column_is_refused_without_showing_it(sim_env):
    secret = TRADER.api_secret.reveal()
    lines = [
        f"{secret},{TRADER.api_key},{secret},{TRADER.passphrase.reveal()},spot\n",
        f"desk,{TRADER.api_key},{secret},{TRADER.passphrase.reveal()},{CANARY}-passphrase\n",
    ]
    result = preview(sim_env, HEADER + "".join(lines))
    assert [line.verdict for line in result.lines] == [Verdict.REFUSED] * 2
    assert "label column holds what looks like a credential" in result.lines[0].details[0]
    assert "scopes column holds something other than scope names" in result.lines[1].details[0]
    shown = result.frame().to_csv()
    assert secret not in shown and CANARY not in shown and result.token is None
    assert sim_env.requests == []


def test_the_template_is_a_file_the_import_reads_and_refuses_with_what_to_fix(sim_env):
    for file_format in ("csv", "json"):
        text = template(file_format)
        result = preview(sim_env, text, name=f"keys.{file_format}")
        [line] = result.lines
        assert line.verdict is Verdict.REFUSED and line.label == "mm-bot-01"
        assert "API Key:" in " ".join(line.details)
    assert template().splitlines()[0] == "label,api_key,api_secret,passphrase,scopes,note"


def test_a_json_file_is_read_as_the_csv_is_with_scopes_as_text_or_a_list(sim_env):
    values = {
        "api_key": TRADER.api_key,
        "api_secret": TRADER.api_secret.reveal(),
        "passphrase": TRADER.passphrase.reveal(),
    }
    document = [
        {"label": "desk-a", **values, "scopes": "spot", "note": "json"},
        {"label": "desk-b", **values, "scopes": ["spot"]},
    ]
    result = preview(sim_env, json.dumps({"keys": document}), name="keys.json")
    assert [line.verdict for line in result.lines] == [Verdict.READY, Verdict.DUPLICATE]
    assert result.lines[0].note == "json"
    assert "Same API key as line 1" in result.lines[1].details[0]


def test_only_the_ready_lines_are_saved_unless_warnings_and_unverified_are_confirmed(sim_env):
    bind_existing(sim_env)
    lines = desk_lines(sim_env.simulator, TRADER)
    data = csv_text(lines)
    first = preview(sim_env, data)
    summary = bulk_import.confirm_import(sim_env.console, first.token)
    ready = {line.label for line in first.lines if line.verdict is Verdict.READY}
    assert {a.label for a in binding.accounts(sim_env.console)} == ready | {"existing"}
    not_confirmed = [s for s in summary.lines if "warnings were not confirmed" in s.outcome]
    assert len(not_confirmed) == first.with_warnings == 2
    assert sum("saving it as unverified was not chosen" in s.outcome for s in summary.lines) == 3
    with pytest.raises(BindingError, match="expired or was already used"):
        bulk_import.confirm_import(sim_env.console, first.token)

    again = preview(sim_env, data)  # a label bound now is refused, as a single bind refuses it
    taken = [x for x in again.lines if x.label in ready and x.verdict is not Verdict.DUPLICATE]
    assert len(taken) == len(ready)
    assert all("Label: An account labelled" in line.details[0] for line in taken)
    summary = bulk_import.confirm_import(
        sim_env.console, again.token, accept_warnings=True, accept_unverified=True
    )
    unverified = {a.label for a in binding.accounts(sim_env.console) if a.unverified}
    assert unverified == {"desk-41", "desk-42", "desk-43"}
    assert summary.bound == 5  # the two with warnings, the three whitelisted elsewhere


def test_a_discarded_preview_saves_nothing(sim_env):
    result = preview(sim_env, HEADER + TRADER_LINE)
    bulk_import.discard_import(result.token)
    with pytest.raises(BindingError, match="expired or was already used"):
        bulk_import.confirm_import(sim_env.console, result.token)
    assert binding.accounts(sim_env.console) == []


def test_a_line_bound_by_someone_else_meanwhile_is_reported_and_the_others_saved(sim_env):
    lines = desk_lines(sim_env.simulator, TRADER)[:3]
    result = preview(sim_env, csv_text(lines))
    first = lines[0].values
    binding.bind(sim_env.console, **{k: v for k, v in first.items() if k != "note"})
    summary = bulk_import.confirm_import(sim_env.console, result.token)
    assert [s.bound for s in summary.lines] == [False, True, True]
    assert "Nothing was saved" in summary.lines[0].outcome
    assert summary.text() == "Bound 2 of 3 lines; 1 not bound."


def _database_text(env: SimEnv) -> str:
    """Return every row of every table of the test's SQLite file, as text."""
    with sqlite3.connect(env.data_dir / "bindwatch.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f"SELECT * FROM {t}"))


def test_no_secret_reaches_the_database_the_logs_the_messages_or_the_summary(
    sim_env, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    bind_existing(sim_env)
    lines = desk_lines(sim_env.simulator, TRADER)
    result = preview(sim_env, csv_text(lines))
    summary = bulk_import.confirm_import(
        sim_env.console, result.token, accept_warnings=True, accept_unverified=True
    )
    assert summary.bound == sum(line.bound for line in lines) + 3
    secrets = {line.values["api_secret"].strip() for line in lines}
    shown = "\n".join(
        [
            _database_text(sim_env),
            caplog.text,
            *capsys.readouterr(),
            result.frame().to_csv(),
            summary.frame().to_csv(),
            summary.text(),
            repr(result),
            repr(summary),
        ]
    )
    assert CANARY not in shown
    assert not [secret for secret in secrets if secret in shown]


def test_a_batch_measures_kucoins_clock_and_our_ip_once_and_checks_each_key_once(sim_env):
    lines = desk_lines(sim_env.simulator, TRADER)[:20]  # the good keys
    result = preview(sim_env, csv_text(lines))
    assert result.count(Verdict.READY) == 20
    asked = Counter(sim_env.requests)
    assert (asked["/api/v1/timestamp"], asked["/api/v1/my-ip"]) == (1, 1)
    assert asked["/api/v1/user/api-key"] == 20


def _held(passphrase: str) -> bool:
    """Return whether any Credentials holding this passphrase is still alive in the process."""
    gc.collect()
    return any(
        isinstance(held, Credentials) and held.passphrase.reveal() == passphrase
        for held in gc.get_objects()
    )


def test_a_preview_nobody_confirms_leaves_memory_on_time(sim_env, monkeypatch):
    monkeypatch.setattr(binding, "PENDING_TTL_S", 3.0)  # longer than scanning the process
    passphrase = f"{CANARY}-pending-{uuid.uuid4().hex}"  # held by no other test's preview
    key = sim_key(99, passphrase=passphrase)
    sim_env.simulator.add_account(key)
    result = preview(sim_env, csv_text([line(key, "desk-pending", "ready", True)]))
    assert result.count(Verdict.READY) == 1 and _held(passphrase)  # waiting for the operator

    time.sleep(4.5)  # nobody confirms, nobody imports anything meanwhile
    assert not _held(passphrase)
    with pytest.raises(BindingError, match="expired"):
        bulk_import.confirm_import(sim_env.console, result.token)
    assert binding.accounts(sim_env.console) == []

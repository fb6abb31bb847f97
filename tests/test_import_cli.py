"""`python -m lib import FILE` against the simulator over real HTTP, with a real SQLite file."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import struct
import subprocess
import sys
import termios

import pytest
from app_fixtures import ROOT, TRADER, sim_env_fixture  # noqa: F401 (fixture)
from import_fixtures import CANARY, bind_existing, csv_text, desk_lines

from lib.__main__ import main
from lib.console import binding
from lib.console.import_file import COLUMNS


class Terminal(io.StringIO):
    """Stdin that is a terminal: the command may ask, and reads these answers."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stdin is not a terminal unless a test says so: nothing may be asked."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `python -m lib ARGV` in this process; return (status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def private_file(tmp_path, text: str, name: str = "keys.csv"):
    """Write a file of keys readable by its owner only; return its path."""
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def labels(env) -> set[str]:
    """Return the labels of the bound accounts."""
    return {a.label for a in binding.accounts(env.console)}


def test_the_template_is_printed_with_the_files_columns(capsys):
    status, out, _ = cli(capsys, "import", "--template")
    assert status == 0
    assert next(csv.reader(io.StringIO(out))) == list(COLUMNS)
    status, out, _ = cli(capsys, "import", "--template", "--json")
    assert status == 0 and set(json.loads(out)[0]) == set(COLUMNS)


def test_a_file_readable_by_others_is_refused_with_how_to_fix_it(sim_env, tmp_path, capsys):
    path = private_file(tmp_path, csv_text(desk_lines(sim_env.simulator, TRADER)[:2]))
    path.chmod(0o644)
    status, out, err = cli(capsys, "import", str(path), "--yes")
    assert status == 2 and out == ""
    assert "readable by other users" in err and f"chmod 600 {path}" in err
    assert labels(sim_env) == set() and sim_env.requests == []


def test_import_previews_saves_with_yes_and_reminds_to_delete_the_file(
    sim_env, tmp_path, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    bind_existing(sim_env)
    lines = desk_lines(sim_env.simulator, TRADER)
    path = private_file(tmp_path, csv_text(lines))
    status, out, err = cli(capsys, "import", str(path), "--yes")
    assert status == 1, err  # some lines are refused
    expected = {binding.normal_label(one.values["label"]) for one in lines if one.bound}
    assert labels(sim_env) == expected | {"existing"}
    assert "needs confirmation" in out and "KuCoin 400004" in out
    assert f"Bound {len(expected)} of 50 lines" in out
    assert "Reminder:" in err and f"shred -u {path}" in err
    assert CANARY not in out + err + caplog.text


def test_without_yes_or_a_terminal_nothing_is_saved(sim_env, tmp_path, capsys):
    path = private_file(tmp_path, csv_text(desk_lines(sim_env.simulator, TRADER)[:3]))
    status, _, err = cli(capsys, "import", str(path))
    assert status == 1 and "confirm with --yes" in err
    assert labels(sim_env) == set()


def test_a_terminal_is_asked_for_warnings_unverified_keys_and_the_save(
    sim_env, tmp_path, capsys, monkeypatch
):
    bind_existing(sim_env)
    lines = desk_lines(sim_env.simulator, TRADER)
    path = private_file(tmp_path, csv_text(lines))
    monkeypatch.setattr(sys, "stdin", Terminal("y\nn\ny\n"))  # warnings yes, unverified no
    status, out, _ = cli(capsys, "import", str(path))
    assert status == 1
    bound = labels(sim_env)
    assert {"desk-37", "desk-38"} <= bound  # the lines with warnings
    assert not {"desk-41", "desk-42", "desk-43"} & bound  # whitelisted elsewhere
    assert "Also save the 2 keys with the warnings" in out


def test_json_prints_every_line_with_its_decision_and_outcome(sim_env, tmp_path, capsys):
    bind_existing(sim_env)
    lines = desk_lines(sim_env.simulator, TRADER)
    path = private_file(tmp_path, csv_text(lines))
    status, out, _ = cli(capsys, "import", str(path), "--json", "--yes", "--save-unverified")
    document = json.loads(out)
    assert status == 1
    assert [line["decision"] for line in document["lines"]] == [one.verdict for one in lines]
    assert document["bound"] == sum(one.bound for one in lines) + 3 == len(labels(sim_env)) - 1
    refused = next(line for line in document["lines"] if line["code"] == "400004")
    assert refused["bound"] is False and "Not bound" in refused["outcome"]
    assert CANARY not in out


def test_a_bad_file_is_refused_without_a_traceback(sim_env, tmp_path):
    path = private_file(tmp_path, "label,api_key\n")
    done = subprocess.run(
        [sys.executable, "-m", "lib", "import", str(path), "--yes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "missing columns 'api_secret', 'passphrase', 'scopes'" in done.stderr
    assert "Traceback" not in done.stderr and "Reminder:" in done.stderr


def test_a_10_mb_file_is_refused_before_it_is_read(sim_env, tmp_path, capsys):
    path = tmp_path / "huge.csv"
    with path.open("wb") as out:
        out.truncate(10_000_000)
    path.chmod(0o600)
    status, out, err = cli(capsys, "import", str(path), "--yes")
    assert status == 2 and out == ""
    assert "is 10.0 MB; a file of keys is at most 1000 KB" in err
    assert labels(sim_env) == set() and sim_env.requests == []


def test_a_terminal_sees_a_progress_bar_while_the_keys_are_verified(sim_env, tmp_path):
    path = private_file(tmp_path, csv_text(desk_lines(sim_env.simulator, TRADER)[:5]))
    leader, follower = os.openpty()  # stderr is a terminal, stdin and stdout are not
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 wide
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lib", "import", str(path), "--yes"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=120,
        )
        os.close(follower)
        follower = -1
        shown = b""
        while chunk := _read_available(leader):
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 0
    assert b"Verifying: 100%" in shown and b"5/5" in shown
    assert b"Bound 5 of 5 lines" in done.stdout


def _read_available(fd: int) -> bytes:
    """Return what a terminal holds now (b"" once it is drained or closed)."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""

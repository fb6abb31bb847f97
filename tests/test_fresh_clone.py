"""A newcomer's first ten minutes, from a fresh clone, as the README tells them.

`make run` in a clone of the repository (its own .venv, installed from the runtime lock: PyPI
must be in reach), the first admin created on the setup page, the master key's backup
confirmed, the demo fleet loaded with every status and its fix; then the README's "Practise
binding on the simulator" and backup commands run as written, in that clone.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from served_app import assert_no_exception, browser_fixture, expect, free_port, session, settle

from lib.health.status import Status

__all__ = ["browser_fixture"]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PRACTICE = "### 4. Practise binding on the simulator"
BACKUP = "### 6. Back up: the database and the master key, apart"
SIMULATOR_PORT = 8790  # the README's simulator listens where `simulate` does by default
INSTALL_TIMEOUT_S = 900  # a fresh .venv from the runtime lock, PyPI's speed permitting
ADMIN, PASSWORD = "ana", "ana's first password"
# A newcomer's shell: nothing of this test run's own installation or environment.
_NOT_INHERITED = re.compile(r"^(BINDWATCH_|KUCOIN_API_|VIRTUAL_ENV$|PYTHONPATH$|MPLBACKEND$)")


def readme_blocks(heading: str) -> list[str]:
    """Return the shell blocks of one README section, in order."""
    text = README.read_text()
    section = text[text.index(heading) + len(heading) :]
    section = section[: section.index("\n### ")]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def newcomer_env(**extra: str) -> dict[str, str]:
    """Return the environment a newcomer's terminal has, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not _NOT_INHERITED.match(k)}
    env.update(extra)
    return env


def listening(port: int) -> bool:
    """Return whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen) -> None:
    """End a process started in its own session, and everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh clone of the repository's committed tree."""
    where = tmp_path_factory.mktemp("fresh") / "bindwatch"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True)
    assert not (where / ".venv").exists() and not list((where / "data").glob("*.db"))
    return where


@pytest.fixture(scope="module")
def console_url(clone: Path) -> Iterator[str]:
    """Run `make run` in the clone, as the README says; yield its address once it answers."""
    port = free_port()
    log = clone.parent / "make-run.log"
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=newcomer_env(STREAMLIT_SERVER_PORT=str(port)),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while time.monotonic() - started < INSTALL_TIMEOUT_S:
            if process.poll() is not None:
                pytest.fail(f"make run exited {process.returncode}:\n{log.read_text()[-5000:]}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail(f"make run did not serve within {INSTALL_TIMEOUT_S} s:\n{log.read_text()}")
        print(f"make run in a fresh clone served after {time.monotonic() - started:.0f} s")
        yield url
    finally:
        stop(process)


@pytest.mark.slow
def test_first_run_in_the_browser_ends_on_the_demo_fleet_with_every_status_and_its_fix(
    console_url: str, clone: Path, browser, tmp_path: Path
):
    with session(browser, console_url, operator=None) as page:
        settle(page)
        expect(page.get_by_role("heading", name="Create the first admin")).to_be_visible()
        page.get_by_label("Name", exact=True).fill(ADMIN)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Password again", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Create admin and sign in").click()
        page.wait_for_load_state()
        settle(page)

        key_file = str(clone / "data" / "master.key")
        expect(page.get_by_text(key_file)).to_be_visible()
        page.get_by_role("button", name="I have backed up the master key file").click()
        settle(page)
        expect(page.get_by_text(key_file)).to_have_count(0)

        expect(page.get_by_text("No KuCoin account is bound yet")).to_be_visible()
        page.get_by_role("button", name="Load demo fleet").click()
        page.get_by_test_id("stDataFrame").wait_for(timeout=180_000)
        settle(page)
        assert_no_exception(page)

        tiles = page.locator(".st-key-fleet_status").get_by_role("button")
        labels = [" ".join(t.split()) for t in tiles.all_inner_texts()]
        shown = set(Status) - {Status.REJECTED}  # any other code: the demo makes none
        for status in shown:
            assert any(f"{status.title} {status.value}" in label for label in labels), labels

        export = page.get_by_role("button", name=re.compile(r"^Export CSV"))
        with page.expect_download() as download:
            export.click()
        saved = tmp_path / "fleet.csv"
        download.value.save_as(saved)
    fleet = pd.read_csv(saved)
    assert set(fleet["status"]) == {s.value for s in shown}
    assert fleet["hint"].notna().all() and (fleet["hint"].str.len() > 10).all()


@pytest.mark.slow
def test_the_readmes_practice_and_backup_commands_run_as_written(console_url: str, clone: Path):
    simulate, practise = readme_blocks(PRACTICE)
    if listening(SIMULATOR_PORT):
        pytest.fail(f"port {SIMULATOR_PORT} is taken: the README's simulator cannot start")
    env = newcomer_env()
    simulator = subprocess.Popen(
        ["bash", "-c", simulate],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not listening(SIMULATOR_PORT) and time.monotonic() < deadline:
            assert simulator.poll() is None, simulator.stdout.read()
            time.sleep(0.2)
        done = subprocess.run(
            ["bash", "-e", "-c", practise],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop(simulator)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert out.count("API Status: Connected") == 2  # check, then bind's own check
    assert "exit 1: KuCoin said 400004" in out and "Wrong API passphrase (400004)" in out
    assert "Saved: account 'practice'" in out
    assert re.search(r"AT_RISK\s+practice", out)

    [backup] = [b for b in readme_blocks(BACKUP) if "backup(" in b]
    subprocess.run(["bash", "-e", "-c", backup], cwd=clone, env=env, check=True, timeout=60)
    tables = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3; print(sqlite3.connect('bindwatch-backup.db')"
            ".execute('select count(*) from accounts').fetchone()[0])",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    assert tables.stdout.strip() == "1"  # the practice account, in the online backup

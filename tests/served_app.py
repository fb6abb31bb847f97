"""A served console and a real browser, for the journeys only a browser shows.

AppTest runs one fresh session per test: it cannot see a second browser session, widget state
dropped on a page switch, or a rerun that moves the page to another account. These helpers
serve the console exactly as `make run` does (`streamlit run server.py`: app.py behind the
server's own checks), point it at a KuCoin simulator on loopback, and drive Debian's Chromium
with Playwright (never a downloaded browser). Each `session()` is a fresh browser context: its
own cookies, its own Streamlit session.

Import what a module needs (`from served_app import browser_fixture, serve, session, settle`);
pytest registers `browser_fixture` as `browser`. A module that imports this is skipped where
Chromium is missing, and fails in CI, which must install it.

The console shows only its sign-in page until a browser signs in. `serve()` creates the
operators of `app_fixtures.OPERATORS` (an admin and a viewer) through the store before the
server starts, unless told `operators=False` (a first run, with its setup page), and confirms
the master key's backup (`key_backed_up=False` keeps its notice on every page); `session()`
signs its browser context in as the admin (or `operator=...`, or nobody with `operator=None`)
by posting the sign-in form to the served console, as a browser does, before opening `url`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from app_fixtures import OPERATORS, confirm_key_backup_once, ensure_operators

from lib.config import Config
from lib.console import Console
from lib.session_cookie import COOKIE, SIGN_IN_PATH

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
if not shutil.which(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(f"CI must install Debian's chromium ({CHROMIUM} not found)")
    pytest.skip(
        f"Debian's chromium is not installed ({CHROMIUM}): the real-browser journeys are skipped",
        allow_module_level=True,
    )

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

# Without the background-networking flags Chromium keeps calling Google hosts on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ENTRY = "server.py"  # what `make run` serves (tests/test_hardening.py holds the two together)
VIEWPORT = {"width": 1440, "height": 900}  # the operator's screen the console is judged at
# Variables a test's served app must not inherit from the shell that runs the tests.
_INHERITED = (
    "BINDWATCH_DATABASE_URL",
    "BINDWATCH_MASTER_KEY_FILE",
    "BINDWATCH_KUCOIN_SPOT_URL",
    "BINDWATCH_KUCOIN_FUTURES_URL",
)


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class ServedApp:
    """A running console (`streamlit run server.py`): its URL, data directory and log file."""

    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        """Return what the server printed so far."""
        return self.log.read_text(errors="replace")


@contextmanager
def serve(
    data_dir: Path,
    *,
    spot_url: str | None = None,
    futures_url: str | None = None,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    entry: str = ENTRY,
    operators: bool = True,
    key_backed_up: bool = True,
) -> Iterator[ServedApp]:
    """Serve `entry` (the console unless told) from the project root over `data_dir`.

    With `operators`, OPERATORS exist in its database first (else it starts at its setup), and
    the master key's backup is confirmed unless `key_backed_up` is False (its notice shows).
    """
    log = data_dir.parent / f"streamlit-{data_dir.name}.log"
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    environ["BINDWATCH_DATA_DIR"] = str(data_dir)
    if spot_url:
        environ["BINDWATCH_KUCOIN_SPOT_URL"] = spot_url
    if futures_url:
        environ["BINDWATCH_KUCOIN_FUTURES_URL"] = futures_url
    environ.update(env or {})
    if operators:
        console = Console.open(Config.from_env(environ))
        try:
            ensure_operators(console)
            if key_backed_up:
                confirm_key_backup_once(console)
        finally:
            console.close()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", entry, f"--server.port={port}", *args],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield ServedApp(url, data_dir, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    """Return once the server answers its health check; raise with its log if it died."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    raise RuntimeError(f"streamlit did not become healthy:\n{log.read_text(errors='replace')}")


@pytest.fixture(name="browser", scope="module")
def browser_fixture():
    """Yield Debian's Chromium, headless, for one test module."""
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def session(
    browser, url: str | None = None, *, operator: str | None = "admin", app: str | None = None
):
    """Yield a page in a fresh browser context (a new Streamlit session), at `url` if given.

    The context is signed in as `operator` (one of OPERATORS; None: nobody) on the console at
    `app`, or at `url`'s origin.
    """
    context = browser.new_context(accept_downloads=True, viewport=VIEWPORT)
    page = context.new_page()
    try:
        served = app or url
        if operator is not None and served is not None:
            sign_in(context, served, operator)
        if url is not None:
            goto(page, url)
        yield page
    finally:
        context.close()


def origin_of(url: str) -> str:
    """Return the scheme, host and port of a URL ("http://127.0.0.1:8501")."""
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}:{parts.port}"


def sign_in_cookie(
    url: str, operator: str = "admin", password: str | None = None
) -> httpx.Response:
    """Post the sign-in form to the console at `url` as its own page does; return the answer."""
    origin = origin_of(url)
    return httpx.post(
        f"{origin}/{SIGN_IN_PATH}",
        data={
            "operator": operator,
            "password": password if password is not None else OPERATORS[operator][1],
            "next": "/",
        },
        headers={"Origin": origin},
        timeout=30,
    )


def sign_in(context, url: str, operator: str = "admin") -> None:
    """Sign a browser context in to the console at `url` as one of OPERATORS."""
    answer = sign_in_cookie(url, operator)
    value = answer.cookies.get(COOKIE)
    assert answer.status_code == 303 and value, (answer.status_code, answer.headers)
    context.add_cookies(
        [
            {
                "name": COOKIE,
                "value": value,
                "url": origin_of(url),
                "httpOnly": True,
                "sameSite": "Strict",
            }
        ]
    )


def goto(page, url: str) -> None:
    """Open `url` and wait for the app to finish its run."""
    page.goto(url)
    settle(page)


def settle(page, timeout_ms: int = 30_000) -> None:
    """Wait until the app is connected and its script has finished running."""
    app = "[data-testid='stApp']"
    page.locator(f"{app}[data-test-connection-state='CONNECTED']").wait_for(
        state="attached", timeout=timeout_ms
    )
    page.wait_for_timeout(300)
    page.locator(f"{app}[data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout_ms
    )


def assert_no_exception(page) -> None:
    """Fail with the text of any Streamlit exception box or error page on the page."""
    boxes = page.get_by_test_id("stException")
    assert boxes.count() == 0, boxes.first.inner_text()
    body = page.locator("body").inner_text()
    for marker in ("Traceback (most recent call last)", "StreamlitPageNotFoundError"):
        assert marker not in body, body[:2000]

"""The served console's defences, tried from outside as an attacker's page or client would.

One console served as `make run` serves it (served_app.serve): no other site may frame it, it
listens on loopback only, grants no cross-origin reads, wants the XSRF token on uploads, opens a
websocket only for its own origin and host name, and shows an error's type without its message
or traceback. Then the install: runtime requirements without test tools, an upper bound on every
direct dependency, and hashed locks that `make` installs from.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from app_fixtures import TEST_ACCOUNTS
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from served_app import (
    ENTRY,
    ROOT,
    ServedApp,
    browser_fixture,
    free_port,
    serve,
    session,
    settle,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from lib.kucoin.sim import Simulator, SimulatorServer

__all__ = ["browser_fixture"]

FOREIGN = "https://attacker.example"
STREAM = "/_stcore/stream"
TEST_TOOLS = {"pytest", "playwright", "ruff", "ccxt", "uv", "websockets", "packaging"}
# What `make notebook` and the notebook tests need: development tools, never the console's.
NOTEBOOK_TOOLS = {"jupyterlab", "ipykernel", "nbclient", "nbformat", "matplotlib"}


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[ServedApp]:
    """Serve the console once for the module, KuCoin pointed at a simulator on loopback."""
    with SimulatorServer(Simulator(TEST_ACCOUNTS)) as server:
        data = tmp_path_factory.mktemp("hardening") / "data"
        with serve(data, spot_url=server.spot_url, futures_url=server.futures_url) as served:
            yield served


@pytest.fixture(scope="module")
def framing_site(console: ServedApp) -> Iterator[str]:
    """Serve, from another origin, a page that frames the console's Settings page."""
    page = f'<h1>Win a prize</h1><iframe name="console" src="{console.url}/settings"></iframe>'

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # keep the test output quiet
            pass

    site = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/"
    finally:
        site.shutdown()
        site.server_close()


def host_of(url: str) -> str:
    """Return the host:port a URL names."""
    return urlsplit(url).netloc


def ws_url(url: str) -> str:
    """Return the address of the console's websocket."""
    return f"ws://{host_of(url)}{STREAM}"


# --- framing ---------------------------------------------------------------------------------


def static_asset(url: str) -> str:
    """Return the path of one JavaScript file the console's page loads."""
    page = httpx.get(url + "/").text
    match = re.search(r'src="\.?(/static/[^"]+\.js)"', page)
    assert match, page[:500]
    return match.group(1)


def test_every_response_forbids_framing(console: ServedApp) -> None:
    paths = [
        "/",
        "/settings",
        "/account?account=1",
        "/_stcore/health",
        "/_stcore/host-config",
        static_asset(console.url),
        "/static/no-such-file.js",
    ]
    for path in paths:
        response = httpx.get(console.url + path)
        assert response.headers.get("x-frame-options") == "DENY", path
        assert response.headers.get("content-security-policy") == "frame-ancestors 'none'", path


def test_a_page_on_another_origin_cannot_frame_the_console(console, framing_site, browser) -> None:
    with session(browser, app=console.url) as page:
        page.goto(framing_site)  # waits for the frame's load as well
        frame = page.frame(name="console")
        assert frame is not None
        # Chromium refuses the navigation and shows its own error page in the frame instead.
        assert frame.url.startswith("chrome-error://"), frame.url
        assert frame.locator("[data-testid='stApp']").count() == 0
        # The same browser opens the console itself: only the frame was refused.
        page.goto(console.url + "/settings")
        settle(page)
        assert page.locator("[data-testid='stApp']").count() == 1


# --- what held before: loopback, CORS, XSRF, websocket origins, error details -----------------


def listening_addresses(port: int) -> set[str]:
    """Return the local addresses the kernel lists as listening on TCP `port` (Linux)."""
    addresses = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        path = Path(table)
        for line in path.read_text().splitlines()[1:] if path.exists() else ():
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                family = socket.AF_INET if width == 8 else socket.AF_INET6
                addresses.add(socket.inet_ntop(family, words))
    return addresses


def test_the_console_listens_on_loopback_only(console: ServedApp) -> None:
    port = urlsplit(console.url).port
    assert listening_addresses(port) == {"127.0.0.1"}
    # Bound to 127.0.0.1 itself, not to every address: another loopback address gets no answer.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.2:{port}/_stcore/health", timeout=5)


def test_another_origin_is_granted_no_cross_origin_read(console: ServedApp) -> None:
    for path in ("/_stcore/health", "/_stcore/host-config"):
        answer = httpx.get(console.url + path, headers={"Origin": FOREIGN})
        assert answer.status_code == 200, path
        assert "access-control-allow-origin" not in answer.headers, path
        preflight = httpx.options(
            console.url + path,
            headers={"Origin": FOREIGN, "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers, path
    upload = httpx.options(
        console.url + "/_stcore/upload_file/s/f",
        headers={"Origin": FOREIGN, "Access-Control-Request-Method": "PUT"},
    )
    assert upload.headers.get("access-control-allow-origin") not in (FOREIGN, "*")


def test_an_upload_without_the_xsrf_token_is_refused(console: ServedApp) -> None:
    with httpx.Client(base_url=console.url) as client:
        token = client.get("/_stcore/health").cookies["_streamlit_xsrf"]
        upload = "/_stcore/upload_file/no-such-session/file-1"
        files = {"file": ("a.txt", b"x")}
        assert client.put(upload, files=files).status_code == 403
        # With the token the XSRF check passes and the request fails further on (no session).
        answer = client.put(upload, files=files, headers={"X-Xsrftoken": token})
        assert answer.status_code == 400, answer.text


@pytest.mark.parametrize(
    "origin",
    [
        FOREIGN,
        "null",  # a sandboxed frame or a file:// page
        "http://127.0.0.1:9",  # another web server on this machine
        "http://localhost",
    ],
)
def test_a_websocket_from_another_origin_is_refused(console: ServedApp, origin: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(console.url), origin=origin, subprotocols=["streamlit"], open_timeout=10)
    assert refused.value.response.status_code == 403


def test_a_websocket_from_the_console_own_page_is_accepted(console: ServedApp) -> None:
    with connect(
        ws_url(console.url), origin=console.url, subprotocols=["streamlit"], open_timeout=10
    ) as stream:
        assert stream.subprotocol == "streamlit"


def test_a_dns_rebinding_page_gets_no_websocket(console: ServedApp) -> None:
    # The attacker's name resolves to 127.0.0.1: its page is same-origin with itself.
    port = urlsplit(console.url).port
    rebound = f"attacker.example:{port}"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        with pytest.raises(InvalidStatus) as refused:
            connect(
                f"ws://{rebound}{STREAM}",
                sock=sock,
                origin=f"http://{rebound}",
                subprotocols=["streamlit"],
                open_timeout=10,
            )
    assert refused.value.response.status_code == 403


FAILING_PAGE = """
import streamlit as st

st.title("A page that fails")
raise RuntimeError("detail-canary-5e1f must stay on the server")
"""


def test_a_failing_page_shows_the_error_type_without_message_or_traceback(
    tmp_path: Path, browser
) -> None:
    # Served from the project root like the console, so .streamlit/config.toml applies.
    script = tmp_path / "failing_page.py"
    script.write_text(FAILING_PAGE)
    with serve(tmp_path / "data", entry=str(script), operators=False) as served:
        with session(browser, served.url, operator=None) as page:
            box = page.get_by_test_id("stException")
            box.wait_for(timeout=20_000)
            shown = page.locator("body").inner_text()
        assert "detail-canary-5e1f" in served.log_text()  # the operator's log keeps it
    assert "RuntimeError" in shown
    for leak in ("detail-canary-5e1f", "Traceback", "failing_page.py", 'File "'):
        assert leak not in shown, shown


# --- dependencies -----------------------------------------------------------------------------


def requirements(path: Path) -> list[Requirement]:
    """Return the requirements a requirements file names itself (not its -r includes)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def lock_pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Return each locked package's version and hashes from a hashed lock file."""
    text = path.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        requirement, *options = entry.split(" --hash=")
        name, version = requirement.split(";")[0].strip().split("==")
        pins[canonicalize_name(name)] = (version, [o.strip() for o in options])
    return pins


RUNTIME_REQUIREMENTS = ROOT / "requirements.txt"
DEV_REQUIREMENTS = ROOT / "requirements-dev.txt"
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"


def test_runtime_requirements_and_lock_hold_no_test_tools() -> None:
    runtime = {canonicalize_name(r.name) for r in requirements(RUNTIME_REQUIREMENTS)}
    dev = {canonicalize_name(r.name) for r in requirements(DEV_REQUIREMENTS)}
    assert not runtime & (TEST_TOOLS | NOTEBOOK_TOOLS)
    assert not set(lock_pins(RUNTIME_LOCK)) & (TEST_TOOLS - {"websockets", "packaging"})
    assert dev >= TEST_TOOLS | NOTEBOOK_TOOLS
    assert "-r requirements.txt" in DEV_REQUIREMENTS.read_text().splitlines()


def test_every_direct_dependency_has_an_upper_bound() -> None:
    for path in (RUNTIME_REQUIREMENTS, DEV_REQUIREMENTS):
        for requirement in requirements(path):
            operators = {spec.operator for spec in requirement.specifier}
            assert operators & {"<", "<=", "==", "~=", "==="}, f"{path.name}: {requirement}"


@pytest.mark.parametrize(
    ("requirements_file", "lock"),
    [(RUNTIME_REQUIREMENTS, RUNTIME_LOCK), (DEV_REQUIREMENTS, DEV_LOCK)],
    ids=["runtime", "dev"],
)
def test_each_lock_pins_every_requirement_with_hashes(requirements_file, lock) -> None:
    pins = lock_pins(lock)
    for name, (_, hashes) in pins.items():
        assert hashes and all(h.startswith("sha256:") for h in hashes), name
    named = requirements(requirements_file) + requirements(RUNTIME_REQUIREMENTS)
    for requirement in named:
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    # The dev lock is the runtime lock plus the tools: the same version of every runtime package.
    dev = lock_pins(DEV_LOCK)
    assert {n: v for n, (v, _) in lock_pins(RUNTIME_LOCK).items()} == {
        n: dev[n][0] for n in lock_pins(RUNTIME_LOCK)
    }


class ImportLookups(importlib.abc.MetaPathFinder):
    """Counts the imports Python has to search for (a module already imported is not)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name, path, target=None):
        self.names.append(name)
        return None  # let the real finders answer


def test_async_requests_search_for_no_missing_module(console: ServedApp) -> None:
    # httpcore imports sniffio on every async request: were it missing, each request would
    # search the whole import path again.
    async def three_requests() -> None:
        async with httpx.AsyncClient(base_url=console.url) as client:
            await client.get("/_stcore/health")
            sys.meta_path.insert(0, lookups)
            try:
                for _ in range(3):
                    (await client.get("/_stcore/health")).raise_for_status()
            finally:
                sys.meta_path.remove(lookups)

    lookups = ImportLookups()
    # A thread of its own: Playwright's sync API keeps an event loop running on this one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, three_requests()).result()
    assert lookups.names == []
    assert "sniffio" in lock_pins(RUNTIME_LOCK)


def make_dry_run(target: str) -> str:
    """Return the commands `make TARGET` would run from scratch, without running them."""
    if not shutil.which("make"):
        pytest.fail("make is not installed (CI installs it)")
    done = subprocess.run(
        ["make", "--dry-run", "--always-make", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize(
    ("target", "lock"), [("run", RUNTIME_LOCK), ("test", DEV_LOCK), ("notebook", DEV_LOCK)]
)
def test_make_installs_only_from_the_hashed_lock(target: str, lock: Path) -> None:
    installs = [line for line in make_dry_run(target).splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        assert "--require-hashes" in line.split() and f"-r {lock.name}" in line, line


def test_make_notebook_serves_jupyterlab_on_loopback_only() -> None:
    command = next(line for line in make_dry_run("notebook").splitlines() if "jupyter lab" in line)
    assert "--ServerApp.ip=127.0.0.1" in command.split()


def test_the_browser_tests_serve_what_make_run_serves() -> None:
    assert f"-m streamlit run {ENTRY}" in make_dry_run("run")

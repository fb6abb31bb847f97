"""The demo fleet: a local KuCoin simulator and about 25 simulated accounts showing every status.

Everything goes through the real paths: the simulator serves HTTP on loopback, each key is
bound with lib.console.binding.bind and checked with lib.console.checks.check_account.
Failures are made the way they happen on KuCoin: the key is deleted, its passphrase or
secret changed, the account frozen, a proxy drops a header, the clock drifts. What needs
time to pass (a stale account, hourly history, KuCoin's 30-day rule) is seeded: real check
results taken against the simulator are recorded again with their `checked_at` moved into
the past.

The demo lives in its own directory (data/demo: database and master key), never mixed with
real keys. `build_demo(data_dir)` needs no Streamlit; `demo_console()` is what the app uses, and
`open_or_demo()` what a notebook opens: the configured store, or the demo when none exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from lib import store
from lib.config import Config
from lib.console import Console, KucoinTarget, binding
from lib.console.checks import check_account
from lib.console.fleet import forget_fleet
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import ProbeResult
from lib.kucoin.sim import SimAccount, Simulator, SimulatorServer
from lib.store import seeding
from lib.vault import Keyring, new_master_key, write_keyring

DEMO_ACTOR = "demo"
MARKER = ".bindwatch-demo"  # only a directory holding this file is ever wiped
DATABASE_FILE = "bindwatch.db"
KEY_FILE = "master.key"

# Documentation addresses (RFC 5737): the simulated KuCoin sees every call coming from
# CALLER_IP; the platform has a second egress IP that only some keys whitelist.
CALLER_IP = "203.0.113.154"
SECOND_EGRESS_IP = "198.51.100.20"
EGRESS_IPS = (CALLER_IP, SECOND_EGRESS_IP)
OFFICE_IP = "198.51.100.7"
FUTURES_CURRENCIES = ("USDT", "XBT")

SPOT_TRADE = ("General", "Spot")
SPOT_FUTURES = ("General", "Spot", "Futures")


class DemoError(Exception):
    """The demo cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class DemoAccount:
    """One simulated account: its key, what the platform needs and what happens to it."""

    label: str
    scenario: str  # a key of SCENARIOS: what the demo does after binding
    permissions: tuple[str, ...] = SPOT_TRADE
    scopes: tuple[str, ...] = ("spot",)
    whitelist: tuple[str, ...] = EGRESS_IPS
    sub_name: str | None = None  # None: a master account
    key_age_days: int = 45
    bound_days: int = 30
    last_ok_minutes: int = 12  # the last passing check, before any failure the scenario causes
    beats: str = "o" * 24  # older hourly checks, oldest first: o passed, x failed transiently
    spot: tuple[tuple[str, str, str], ...] = (("trade", "USDT", "1500"),)  # type, ccy, amount
    futures: dict[str, tuple[float, float]] = field(default_factory=dict)  # equity, available


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        "treasury",
        "ok",
        permissions=("General", "Spot", "Margin", "Futures"),
        scopes=("spot", "futures", "margin"),
        spot=(
            ("main", "USDT", "125000"),
            ("trade", "BTC", "1.85"),
            ("trade_hf", "ETH", "22.4"),
            ("margin", "USDT", "5000"),
        ),
        futures={"USDT": (48210.5, 30110.25), "XBT": (0.42, 0.31)},
        bound_days=120,
        key_age_days=60,
        last_ok_minutes=4,
    ),
    DemoAccount(
        "mm-bot-01",
        "ok",
        permissions=SPOT_FUTURES,
        scopes=("spot", "futures"),
        sub_name="mmbot01",
        spot=(("trade_hf", "USDT", "18250.75"), ("trade_hf", "BTC", "0.25")),
        futures={"USDT": (9120.0, 4410.5)},
        last_ok_minutes=6,
    ),
    DemoAccount(
        "mm-bot-02",
        "ok",
        permissions=SPOT_FUTURES,
        scopes=("spot", "futures"),
        sub_name="mmbot02",
        spot=(("trade_hf", "USDT", "7600"), ("trade", "SOL", "310")),
        futures={"USDT": (2250.0, 1990.0)},
        beats="o" * 15 + "xx" + "o" * 7,  # KuCoin had a bad hour earlier today
        last_ok_minutes=9,
    ),
    DemoAccount(
        "arb-desk",
        "ok",
        spot=(("main", "USDT", "40000"), ("trade", "USDT", "12500"), ("trade", "ETH", "3.2")),
        last_ok_minutes=15,
    ),
    DemoAccount(
        "grid-eth",
        "ok",
        sub_name="grideth",
        spot=(("trade", "ETH", "14.5"), ("trade", "USDT", "2200")),
        last_ok_minutes=21,
    ),
    DemoAccount(
        "dca-btc",
        "ok",
        sub_name="dcabtc",
        spot=(("trade", "BTC", "0.0731"), ("main", "USDT", "350")),
        last_ok_minutes=27,
    ),
    DemoAccount(
        "hedge-01",
        "ok",
        permissions=SPOT_FUTURES,
        scopes=("futures",),
        sub_name="hedge01",
        spot=(("main", "USDT", "100"),),
        futures={"USDT": (15000.0, 9800.0), "XBT": (0.05, 0.05)},
        last_ok_minutes=33,
    ),
    DemoAccount(
        "hedge-02",
        "degraded",
        permissions=SPOT_FUTURES,
        scopes=("spot", "futures"),
        sub_name="hedge02",
        futures={"USDT": (3300.0, 2100.0)},
    ),
    DemoAccount("dca-eth", "stale", sub_name="dcaeth", last_ok_minutes=190),
    DemoAccount("night-batch", "stale_unreachable", last_ok_minutes=370),
    DemoAccount("legacy-bot", "key_deleted", sub_name="legacy"),
    DemoAccount("restored-bot", "unreadable", sub_name="restored"),
    DemoAccount(
        "swing-trader",
        "key_deleted",
        whitelist=(),  # trading without a whitelist, then unused: KuCoin's 30-day rule
        bound_days=90,
        key_age_days=95,
        last_ok_minutes=35 * 24 * 60,
    ),
    DemoAccount("scalper-03", "passphrase_changed", sub_name="scalper03"),
    DemoAccount("copy-trade", "secret_changed"),
    DemoAccount("vps-proxy", "headers_dropped", sub_name="vpsproxy"),
    DemoAccount("office-bot", "ip_blocked", whitelist=(OFFICE_IP,), beats=""),
    DemoAccount(
        "futures-grid",
        "ok",  # bound with a warning: the key lacks Futures, which the account needs
        scopes=("spot", "futures"),
        sub_name="futgrid",
    ),
    DemoAccount("tokyo-node", "clock_skew", sub_name="tokyo"),
    DemoAccount("frozen-sub", "frozen", sub_name="frozen01"),
    DemoAccount(
        "withdraw-enabled",
        "ok",  # works, but the key may withdraw
        permissions=("General", "Spot", "Transfer"),
        spot=(("main", "USDT", "9000"),),
    ),
    DemoAccount("open-spot", "ok", whitelist=(), sub_name="openspot"),
    DemoAccount("half-listed", "ok", whitelist=(CALLER_IP,), sub_name="halflisted"),
    DemoAccount("veteran-bot", "ok", key_age_days=214, bound_days=200),
    DemoAccount("drifting-clock", "clock_drift", sub_name="drift"),
    DemoAccount("paused-bot", "paused", sub_name="paused01"),
    DemoAccount("import-staging", "unverified", beats="", bound_days=0),
    DemoAccount("new-import", "new", beats="", bound_days=0),
)


def demo_credentials(account: DemoAccount) -> Credentials:
    """Return the simulated key of a demo account (fake, derived from its label)."""
    digest = hashlib.sha256(f"bindwatch-demo:{account.label}".encode()).hexdigest()
    return Credentials(
        api_key=digest[:24],
        api_secret=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bindwatch-demo:{account.label}")),
        passphrase=f"demo-{account.label}",
    )


def demo_uid(index: int) -> int:
    """Return the KuCoin UID of the index-th demo account."""
    return 140_000_000 + 7_919 * (index + 1)


def _sim_account(index: int, account: DemoAccount, now: datetime) -> SimAccount:
    """Return the simulator's side of a demo account."""
    credentials = demo_credentials(account)
    created = now - timedelta(days=account.key_age_days)
    return SimAccount(
        api_key=credentials.api_key,
        api_secret=credentials.api_secret.reveal(),
        passphrase=credentials.passphrase.reveal(),
        uid=demo_uid(index),
        permissions=account.permissions,
        ip_whitelist=account.whitelist,
        is_master=account.sub_name is None,
        sub_name=account.sub_name,
        remark=account.label,
        created_at=int(created.timestamp() * 1000),
        spot=tuple(
            {"currency": ccy, "type": kind, "balance": amount, "available": amount}
            for kind, ccy, amount in account.spot
        ),
        futures={
            ccy: {"accountEquity": equity, "availableBalance": available}
            for ccy, (equity, available) in account.futures.items()
        },
    )


# --- The directory ----------------------------------------------------------------------------


def demo_config(data_dir: Path) -> Config:
    """Return the demo's own database and master key under data_dir."""
    data_dir = Path(data_dir).absolute()
    return Config(data_dir, f"sqlite:///{data_dir / DATABASE_FILE}", data_dir / KEY_FILE)


def default_demo_dir() -> Path:
    """Return where the demo lives by default: data/demo under the configured data directory."""
    return Config.from_env().data_dir / "demo"


def _reset_dir(data_dir: Path) -> None:
    """Empty a demo directory for a fresh build; refuse any directory that is not a demo's."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker = data_dir / MARKER
    if (data_dir / DATABASE_FILE).exists() and not marker.exists():
        raise DemoError(
            f"{data_dir} holds a bindwatch database that is not a demo's: refusing to "
            "overwrite it. Choose an empty directory for the demo."
        )
    for name in (DATABASE_FILE, f"{DATABASE_FILE}-wal", f"{DATABASE_FILE}-shm", KEY_FILE):
        (data_dir / name).unlink(missing_ok=True)
    marker.write_text("This directory holds bindwatch's demo fleet; it is rebuilt at will.\n")
    # The demo's own throwaway key, written here: the vault warns to back up only a key it
    # creates for a real store.
    write_keyring(data_dir / KEY_FILE, Keyring((new_master_key(),)), exclusive=True)


# --- Building -----------------------------------------------------------------------------------


class _HeaderDroppingProxy(httpx.AsyncBaseTransport):
    """An outbound proxy that strips KC-API-PASSPHRASE, as some corporate proxies do."""

    def __init__(self) -> None:
        """Forward over a plain HTTP transport."""
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward the request without the passphrase header."""
        if "KC-API-PASSPHRASE" in request.headers:
            del request.headers["KC-API-PASSPHRASE"]
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the connections to KuCoin."""
        await self._inner.aclose()


@dataclass
class _Builder:
    """Binds the demo accounts one by one and applies each one's scenario."""

    console: Console
    simulator: Simulator
    now: datetime

    def bind(self, account: DemoAccount, *, accept_unverified: bool = False) -> int:
        """Bind a demo key through lib.console.binding (real HTTP); return the account id."""
        credentials = demo_credentials(account)
        outcome = binding.bind(
            self.console,
            label=account.label,
            api_key=credentials.api_key,
            api_secret=credentials.api_secret.reveal(),
            passphrase=credentials.passphrase.reveal(),
            scopes=account.scopes,
            accept_warnings=True,
            accept_unverified=accept_unverified,
        )
        if outcome.account_id is None:
            raise DemoError(f"demo account {account.label!r}: {outcome.check.decision}")
        return outcome.account_id

    def save_unchecked(
        self, account: DemoAccount, result: ProbeResult | None, *, verified_elsewhere: bool = False
    ) -> int:
        """Store a key without a passing check, as an import script would; return the id.

        `verified_elsewhere`: imported as verified before, awaiting its first check (set in the
        same transaction: a fleet snapshot taken meanwhile would never see the flag cleared).
        """
        with self.console.transaction() as session:
            account_id = store.create_account_with_credentials(
                session,
                self.console.vault,
                label=account.label,
                credentials=demo_credentials(account),
                scopes=account.scopes,
                actor=self.console.actor,
                probe=result,
            )
            if verified_elsewhere:
                seeding.mark_verified_elsewhere(session, account_id)
            return account_id

    def probe_only(self, account: DemoAccount) -> ProbeResult:
        """Check a demo key live without recording the result."""
        return self.console.kucoin.probe(
            demo_credentials(account),
            futures_currencies=FUTURES_CURRENCIES,
            want_futures="futures" in account.scopes,
        )

    def seed_history(self, account_id: int, account: DemoAccount) -> None:
        """Demo seeding: move the bind back in time and record hourly checks before it."""
        # The checks are real results from the simulator, recorded again at earlier times.
        last_ok = self.now - timedelta(minutes=account.last_ok_minutes)
        bound_at = min(
            self.now - timedelta(days=account.bound_days),
            last_ok - timedelta(hours=len(account.beats) + 1),
        )
        transient = None
        if "x" in account.beats:
            key = demo_credentials(account).api_key
            self.simulator.fail_next(1, status=503, api_key=key)
            transient = self.probe_only(account)
        with self.console.transaction() as session:
            bind_check = store.latest_probe(session, account_id)
            seeding.backdate_binding(session, account_id, bound_at)
            seeding.retime_checks(session, account_id, last_ok)
            if bind_check is None:
                return
            beats = []
            for hours_before, beat in enumerate(reversed(account.beats), start=1):
                template = transient if beat == "x" and transient else bind_check
                at = last_ok - timedelta(hours=hours_before)
                beats.append((account_id, dataclasses.replace(template, checked_at=at)))
            store.record_probes(session, beats)


def _key(account: DemoAccount) -> str:
    """Return the demo account's API key (what the simulator knows it by)."""
    return demo_credentials(account).api_key


def _bound(b: _Builder, a: DemoAccount) -> int:
    """Bind the account and seed its history; return its id."""
    account_id = b.bind(a)
    b.seed_history(account_id, a)
    return account_id


def _broken(change: Callable[[_Builder, DemoAccount], object]) -> Scenario:
    """Return a scenario: bind, change the account on KuCoin's side, then check it now."""

    def run(b: _Builder, a: DemoAccount) -> None:
        """Bind, break, check."""
        account_id = _bound(b, a)
        change(b, a)
        check_account(b.console, account_id)

    return run


def _failing(fault: Callable[[_Builder, DemoAccount], object]) -> Scenario:
    """Return a scenario: bind, then check while KuCoin fails every try (the retries too)."""

    def run(b: _Builder, a: DemoAccount) -> None:
        """Bind, fail every request of the key, check, heal."""
        account_id = _bound(b, a)
        fault(b, a)
        try:
            check_account(b.console, account_id)
        finally:
            b.simulator.clear_faults(_key(a))

    return run


def _unreadable(b: _Builder, a: DemoAccount) -> None:
    """Bind, then swap two sealed fields of the stored credential and check it."""
    account_id = _bound(b, a)
    with b.console.transaction() as session:
        seeding.swap_sealed_fields(session, account_id)
    check_account(b.console, account_id)


def _headers_dropped(b: _Builder, a: DemoAccount) -> None:
    """Bind, then check through a proxy that strips the passphrase header (400001)."""
    account_id = _bound(b, a)
    proxied = dataclasses.replace(b.console.kucoin, transport=_HeaderDroppingProxy())
    check_account(dataclasses.replace(b.console, kucoin=proxied), account_id)


def _ip_blocked(b: _Builder, a: DemoAccount) -> None:
    """Save the key unverified after KuCoin refused this platform's IP (400006)."""
    b.seed_history(b.bind(a, accept_unverified=True), a)


def _clock_drift(b: _Builder, a: DemoAccount) -> None:
    """Bind while KuCoin's clock runs 3.4 s ahead: close to the 5 s limit."""
    b.simulator.set_clock_offset(3_400)
    try:
        _bound(b, a)
    finally:
        b.simulator.set_clock_offset(0)


def _clock_skew(b: _Builder, a: DemoAccount) -> None:
    """Bind, then check while KuCoin's clock is 9 s off ours and the signed call still fails."""
    # The check measures the 9 s offset and signs with it, yet this key's calls are judged
    # 9 s further off: 400002 while the clocks disagree, a clock problem (CLOCK_SKEW). With
    # agreeing clocks a 400002 would only say the request was slow in transit.
    account_id = _bound(b, a)
    b.simulator.set_clock_offset(9_000, api_key=_key(a))
    b.simulator.set_clock_offset(9_000)
    try:
        check_account(b.console, account_id)
    finally:
        b.simulator.set_clock_offset(0)


def _paused(b: _Builder, a: DemoAccount) -> None:
    """Bind, then pause monitoring."""
    binding.pause(b.console, _bound(b, a))


def _unverified(b: _Builder, a: DemoAccount) -> None:
    """Save the key while KuCoin was unreachable, as an import script would."""
    b.simulator.drop_next(1)
    b.seed_history(b.save_unchecked(a, b.probe_only(a)), a)


def _new(b: _Builder, a: DemoAccount) -> None:
    """Save the key just now; its first check has not run yet."""
    b.save_unchecked(a, None, verified_elsewhere=True)


Scenario = Callable[[_Builder, DemoAccount], None]
# What the demo does to each account; "ok" and "stale" only bind (a stale account's checks
# simply stopped, its last success seeded hours ago).
SCENARIOS: dict[str, Scenario] = {
    "ok": _bound,
    "stale": _bound,
    "degraded": _failing(lambda b, a: b.simulator.fail_next(-1, status=503, api_key=_key(a))),
    "stale_unreachable": _failing(lambda b, a: b.simulator.drop_next(-1, api_key=_key(a))),
    "unreadable": _unreadable,
    "key_deleted": _broken(lambda b, a: b.simulator.remove_account(_key(a))),
    "passphrase_changed": _broken(
        lambda b, a: b.simulator.update_account(_key(a), passphrase=f"{a.label}-new")
    ),
    "secret_changed": _broken(
        lambda b, a: b.simulator.update_account(_key(a), api_secret=str(uuid.uuid4()))
    ),
    "clock_skew": _clock_skew,
    "frozen": _broken(lambda b, a: b.simulator.update_account(_key(a), frozen=True)),
    "headers_dropped": _headers_dropped,
    "ip_blocked": _ip_blocked,
    "clock_drift": _clock_drift,
    "paused": _paused,
    "unverified": _unverified,
    "new": _new,
}
# These fault every caller for a moment.
SERVER_WIDE = frozenset({"clock_skew", "clock_drift", "unverified"})
BUILD_WORKERS = 8


def build_demo(
    data_dir: Path, *, host: str = "127.0.0.1", spot_port: int = 0, futures_port: int = 0
) -> tuple[Console, SimulatorServer]:
    """Start the simulator on loopback and (re)build the demo database; the caller stops both."""
    data_dir = Path(data_dir).absolute()
    _reset_dir(data_dir)
    now = datetime.now(UTC)
    simulator = Simulator(
        [_sim_account(i, a, now) for i, a in enumerate(DEMO_ACCOUNTS)], caller_ip=CALLER_IP
    )
    server = SimulatorServer(simulator, host, spot_port, futures_port).start()
    console: Console | None = None
    try:
        console = Console.open(
            demo_config(data_dir),
            kucoin=KucoinTarget(server.spot_url, server.futures_url),
            actor=DEMO_ACTOR,
        )
        with console.transaction() as session:
            store.update_settings(
                session,
                actor=DEMO_ACTOR,
                egress_ips=list(EGRESS_IPS),
                futures_currencies=list(FUTURES_CURRENCIES),
            )
        builder = _Builder(console, simulator, now)
        # Scenarios that fault the whole simulator run alone; the rest bind side by side.
        alone = [a for a in DEMO_ACCOUNTS if a.scenario in SERVER_WIDE]
        for account in alone:
            SCENARIOS[account.scenario](builder, account)
        others = [a for a in DEMO_ACCOUNTS if a.scenario not in SERVER_WIDE]
        with ThreadPoolExecutor(max_workers=BUILD_WORKERS) as pool:
            list(pool.map(lambda a: SCENARIOS[a.scenario](builder, a), others))
        # The seeding moved bindings and checks back in time around the audit log: a fleet
        # judged meanwhile (the alert worker's) is judged afresh.
        forget_fleet(console)
    except BaseException:
        if console is not None:
            console.close()
        server.stop()
        raise
    return console, server


# --- The app's demo ------------------------------------------------------------------------------


@dataclass
class Demo:
    """A running demo: its console, its simulator server and where its database lives."""

    console: Console
    server: SimulatorServer
    data_dir: Path


_running: Demo | None = None
_lock = threading.Lock()


def start_demo(data_dir: Path | None = None) -> Demo:
    """Return this process's running demo, building it on first use (in data_dir)."""
    global _running
    with _lock:
        if _running is None:
            where = Path(data_dir) if data_dir else default_demo_dir()
            console, server = build_demo(where)
            _running = Demo(console, server, where.absolute())
        return _running


def has_store(config: Config) -> bool:
    """Return whether the configured database exists (a SQLite file, or any other server)."""
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite":
        return True
    return bool(url.database) and Path(url.database).exists()


def open_or_demo(config: Config | None = None) -> Console:
    """Open the configured store if it exists, else the demo fleet (built on first use)."""
    config = config or Config.from_env()
    if has_store(config):
        return Console.open(config)
    return start_demo(config.data_dir / "demo").console


def demo_console() -> Console:
    """Return the demo's console for the app, building the demo on first use."""
    return start_demo().console


def running_demo() -> Demo | None:
    """Return the running demo, if one was started in this process."""
    return _running


def stop_demo() -> None:
    """Stop the running demo's simulator and close its database."""
    global _running
    with _lock:
        if _running is not None:
            _running.console.close()
            _running.server.stop()
            _running = None

"""Time a refresh of 1,000 accounts over real HTTP, and one check on its own.

The simulator runs as its own process (`python -m lib simulate`), enforcing KuCoin's per-UID
pools and the CDN's 500 requests per 10 s per IP, each answer delayed by 50 ms, then 200 ms.
Keys: General+Spot+Futures, UIDs shared by 1 to 5 keys, bound in a SQLite file. What is timed
is "Refresh all" (lib.console.checks.refresh_fleet): the engine, storing included. Requests are
counted by a transport wrapped around the client's (the place KuCoin is takes one).

One by one: a check as it ran before two waves, one account at a time, its five requests
(server time, IP, key info, accounts, futures) one after another on a client of its own, each
result stored in its own transaction. It is timed on the first SAMPLE accounts and scaled to
the fleet. Run from the repository root: `python -m bench.bench_refresh`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from lib import store
from lib.config import REPO_ROOT, Config
from lib.console import Console, KucoinTarget
from lib.console.checks import check_account, refresh_fleet
from lib.kucoin import constants as k
from lib.kucoin import runner
from lib.kucoin.auth import Credentials
from lib.kucoin.client import AsyncKucoinClient
from lib.kucoin.errors import KucoinError
from lib.kucoin.probe_result import Outcome, ProbeResult

ACCOUNTS = 1_000
LATENCIES_MS = (50, 200)
SAMPLE = 100  # accounts timed one by one, scaled to ACCOUNTS
TARGET_RATIO = 1.3
TARGET_SPEEDUP = 12.0  # at 200 ms
TARGET_CHECK_S = 0.45
TARGET_WAVES = 2
SINGLE_CHECKS = 5  # checks timed one after another; the median is the figure
CURRENCIES = ("USDT",)


@dataclass
class Traffic:
    """Every request a transport carried: when it left and came back, and how it ended."""

    spans: list[tuple[float, float]] = field(default_factory=list)
    refused: int = 0  # 429s
    in_flight: int = 0
    peak: int = 0

    def waves(self) -> int:
        """Return how many rounds of requests went out one after another."""
        waves, wave_end = 0, float("-inf")
        for start, end in sorted(self.spans):
            if start >= wave_end:
                waves += 1
                wave_end = end
            else:
                wave_end = max(wave_end, end)
        return waves


class CountingTransport(httpx.AsyncBaseTransport):
    """Passes requests on to a real transport and notes each one in a Traffic."""

    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic
        self._inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=128)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request; count it, its time in flight and a 429."""
        traffic = self.traffic
        traffic.in_flight += 1
        traffic.peak = max(traffic.peak, traffic.in_flight)
        started = time.monotonic()
        try:
            response = await self._inner.handle_async_request(request)
        finally:
            traffic.in_flight -= 1
        traffic.spans.append((started, time.monotonic()))
        traffic.refused += response.status_code == 429
        return response

    async def aclose(self) -> None:
        """Close the real transport."""
        await self._inner.aclose()


def fleet_file(path: Path, count: int = ACCOUNTS) -> list[dict]:
    """Write the simulator's accounts file: UIDs shared by 1 to 5 keys; return the accounts."""
    chooser = random.Random(7)
    accounts, uid = [], 10_000
    while len(accounts) < count:
        uid += 1
        for _ in range(min(chooser.randint(1, 5), count - len(accounts))):
            n = len(accounts) + 1
            accounts.append(
                {
                    "api_key": f"{n:024x}",
                    "api_secret": f"00000000-0000-4000-8000-{n:012x}",
                    "passphrase": f"bench-{n}",
                    "uid": uid,
                    "permissions": ["General", "Spot", "Futures"],
                    "spot": [{"currency": "USDT", "type": "trade", "balance": "100"}],
                    "futures": {"USDT": {"accountEquity": 10.5, "availableBalance": 5.25}},
                }
            )
    path.write_text(json.dumps({"accounts": accounts}))
    return accounts


class SimulatorProcess:
    """`python -m lib simulate` on free loopback ports, with the CDN's per-IP limit."""

    def __init__(self, accounts_file: Path, latency_ms: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lib",
                "simulate",
                "--port",
                "0",
                "--accounts",
                str(accounts_file),
                "--latency-ms",
                str(latency_ms),
                "--ip-limit",
                str(k.CDN_IP_LIMIT),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        urls: dict[str, str] = {}
        assert self.process.stdout is not None
        while len(urls) < 2:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the simulator did not start")
            name, _, url = line.partition(" ")
            if name in ("spot", "futures"):
                urls[name] = url.strip()
        self.spot_url, self.futures_url = urls["spot"], urls["futures"]

    def stop(self) -> None:
        """Stop the simulator."""
        self.process.terminate()
        self.process.wait(timeout=10)


def bound_console(data_dir: Path, kucoin: KucoinTarget, accounts: list[dict]) -> Console:
    """Return a console over a new SQLite file holding every account, unchecked (not timed)."""
    config = Config(data_dir, f"sqlite:///{data_dir / 'bindwatch.db'}", data_dir / "master.key")
    console = Console.open(config, kucoin=kucoin)
    with console.transaction() as session:
        for account in accounts:
            store.create_account_with_credentials(
                session,
                console.vault,
                label=f"bench {account['api_key'][-6:]}",
                credentials=Credentials(
                    account["api_key"], account["api_secret"], account["passphrase"]
                ),
                scopes=("spot", "futures"),
                actor="bench",
            )
    return console


async def _serial_check(client: AsyncKucoinClient) -> None:
    """Run a check's five requests one after another (the check before two waves)."""
    try:
        await client.sync_clock()
        await client.my_ip()
        await client.api_key_info()
        await client.accounts()
        for currency in CURRENCIES:
            await client.futures_overview(currency)
    except KucoinError:
        pass  # a baseline: a failure costs the time it took


def one_by_one(console: Console, sim: SimulatorProcess, ids: list[int]) -> float:
    """Return the seconds to check `ids` as before: serially, a client each, stored each."""
    started = time.monotonic()
    for account_id in ids:
        with console.reading() as session:
            credentials = store.load_credentials(session, console.vault, account_id)
        client = AsyncKucoinClient(credentials, spot_url=sim.spot_url, futures_url=sim.futures_url)
        checked = time.monotonic()
        runner.run(_serial_check(client))
        runner.run(client.aclose())
        result = ProbeResult(
            checked_at=datetime.now(UTC),
            outcome=Outcome.OK,
            latency_ms=round((time.monotonic() - checked) * 1000),
        )
        with console.transaction() as session:
            store.mark_verified(session, account_id, result, actor="bench")
    return time.monotonic() - started


def peak_rss_mb() -> float:
    """Return this process's peak resident memory so far (the simulator runs apart)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def refresh_run(root: Path, accounts: list[dict], latency_ms: int) -> dict[str, float]:
    """Refresh the fleet at one latency, and time one by one; return the figures."""
    sim = SimulatorProcess(root / "accounts.json", latency_ms)
    try:
        traffic = Traffic()
        kucoin = KucoinTarget(
            sim.spot_url,
            sim.futures_url,
            transport=CountingTransport(traffic),
            ip_budget=k.DEFAULT_IP_BUDGET,
        )
        console = bound_console(root / f"data-{latency_ms}", kucoin, accounts)
        with console.reading() as session:
            ids = [a.id for a in store.list_accounts(session)]
        started = time.monotonic()
        results = refresh_fleet(console)
        wall = time.monotonic() - started
        ok = sum(r.ok for r in results.values())
        failures = Counter(r.code or r.outcome.value for r in results.values() if not r.ok)
        serial = one_by_one(console, sim, ids[:SAMPLE]) * len(ids) / SAMPLE
        console.close()
    finally:
        sim.stop()
    requests = len(traffic.spans)
    budget_rps = k.DEFAULT_IP_BUDGET / k.CDN_IP_WINDOW_S
    floor = max(requests * latency_ms / 1000 / max(traffic.peak, 1), requests / budget_rps)
    return {
        "latency_ms": latency_ms,
        "wall": wall,
        "checked": len(results),
        "ok": ok,
        "requests": requests,
        "concurrency": traffic.peak,
        "floor": floor,
        "ratio": wall / floor,
        "refused": traffic.refused,
        "one_by_one": serial,
        "speedup": serial / wall,
        "rss_mb": peak_rss_mb(),
        "failures": ", ".join(f"{n} {code}" for code, n in failures.most_common()) or "none",
    }


def single_check(root: Path, accounts: list[dict]) -> dict[str, float]:
    """Time "Check now" at 200 ms with nothing measured yet: its waves, wall, client build."""
    sim = SimulatorProcess(root / "accounts.json", 200)
    try:
        traffic = Traffic()
        kucoin = KucoinTarget(sim.spot_url, sim.futures_url, transport=CountingTransport(traffic))
        console = bound_console(root / "data-single", kucoin, accounts[: SINGLE_CHECKS + 1])
        with console.reading() as session:
            warm, *timed = (a.id for a in store.list_accounts(session))
        built = time.monotonic()
        kucoin.client()
        first_build = time.monotonic() - built
        built = time.monotonic()
        kucoin.client()
        shared_build = time.monotonic() - built
        check_account(console, warm)  # warms the connections, as a running console has them
        walls, waves, requests, ok = [], [], [], True
        for account_id in timed:
            kucoin.client().measured_at = None  # nothing recent: this check measures for itself
            traffic.spans.clear()
            started = time.monotonic()
            result = check_account(console, account_id)
            walls.append(time.monotonic() - started)
            waves.append(traffic.waves())
            requests.append(len(traffic.spans))
            ok = ok and result.ok
        console.close()
    finally:
        sim.stop()
    return {
        "wall": statistics.median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "waves": max(waves),
        "requests": max(requests),
        "ok": ok,
        "first_build_ms": first_build * 1000,
        "shared_build_ms": shared_build * 1000,
    }


def main() -> bool:
    """Run the refresh at both latencies and the single check; print each against its target."""
    logging.getLogger("lib.vault").setLevel(logging.ERROR)  # "created a new master key file"
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min)")
    on_target = True
    with tempfile.TemporaryDirectory(prefix="bindwatch-bench-refresh-") as tmp:
        root = Path(tmp)
        accounts = fleet_file(root / "accounts.json")
        uids = len({a["uid"] for a in accounts})
        print(
            f"{ACCOUNTS:,} accounts on {uids} UIDs (1-5 keys each), General+Spot+Futures; IP "
            f"budget {k.DEFAULT_IP_BUDGET} per {k.CDN_IP_WINDOW_S} s; the simulator enforces "
            f"the per-UID pools and {k.CDN_IP_LIMIT} per {k.CDN_IP_WINDOW_S} s per IP"
        )
        for latency in LATENCIES_MS:
            r = refresh_run(root, accounts, latency)
            print(
                f"{latency} ms: wall {r['wall']:.1f} s, {r['checked']:,} checked ({r['ok']:,} "
                f"ok; failed: {r['failures']}), {r['requests']:,} requests, peak "
                f"{r['concurrency']} in flight, floor {r['floor']:.1f} s, ratio "
                f"{r['ratio']:.2f} (target <= {TARGET_RATIO}), 429s {r['refused']} (target 0)"
            )
            print(
                f"  one by one: {r['one_by_one']:.0f} s ({SAMPLE} of {ACCOUNTS:,} timed, scaled "
                f"x{ACCOUNTS // SAMPLE}); refresh {r['speedup']:.1f}x faster"
                + (f" (target >= {TARGET_SPEEDUP:g}x)" if latency == 200 else "")
                + f"; peak memory {r['rss_mb']:.0f} MB"
            )
            on_target &= r["ratio"] <= TARGET_RATIO and r["refused"] == 0
            on_target &= r["checked"] == ACCOUNTS
            if latency == 200:
                on_target &= r["speedup"] >= TARGET_SPEEDUP
        single = single_check(root, accounts)
        print(
            f"one check at 200 ms: {single['waves']} waves (target {TARGET_WAVES}), "
            f"{single['requests']} requests, wall {single['wall']:.2f} s (median of "
            f"{SINGLE_CHECKS}, {single['wall_min']:.2f}-{single['wall_max']:.2f} s; target <= "
            f"{TARGET_CHECK_S} s); client: first build {single['first_build_ms']:.1f} ms, "
            f"shared afterwards {single['shared_build_ms']:.3f} ms"
        )
        on_target &= single["waves"] <= TARGET_WAVES and single["wall"] <= TARGET_CHECK_S
    print("OK" if on_target else "MISSED A TARGET")
    return on_target


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

"""Time a bulk import of 200 keys over real HTTP: the preview (every key verified), then saving.

The simulator runs as its own process (`python -m lib simulate`) with each answer delayed by
200 ms, enforcing KuCoin's per-UID pools and the CDN's limit per IP; keys: General+Spot+Futures,
UIDs shared by 1 to 5 keys, imported into a SQLite file already holding a fleet of 1,000
accounts (a desk joining an installation in use). What is timed is the preview
of a CSV file (lib.console.bulk_import.preview_import: reading, the single-bind screening of
every line, and the verification of every key through the checking engine), then confirming
it (each key saved with its first check and audit row). The floor is the refresh bench's: the
requests sent, at the round trip and the peak in flight, or at the IP budget, whichever is
longer. Run from the repository root: `python -m bench.bench_import`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.bench_refresh import (
    CountingTransport,
    SimulatorProcess,
    Traffic,
    bound_console,
    fleet_file,
    peak_rss_mb,
)
from lib.console import KucoinTarget, bulk_import
from lib.console.bulk_import import Verdict
from lib.console.import_file import COLUMNS
from lib.kucoin import constants as k

KEYS = 200
FLEET = 1_000  # accounts bound before the import
LATENCY_MS = 200
TARGET_RATIO = 1.3


def key_file(accounts: list[dict]) -> bytes:
    """Return the CSV file importing every account, one line each."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for n, account in enumerate(accounts, start=1):
        writer.writerow(
            {
                "label": f"desk-{n:03d}",
                "api_key": account["api_key"],
                "api_secret": account["api_secret"],
                "passphrase": account["passphrase"],
                "scopes": "spot;futures",
                "note": "",
            }
        )
    return out.getvalue().encode()


def import_run(root: Path) -> dict[str, float | str]:
    """Preview and confirm the import of KEYS keys at LATENCY_MS; return the figures."""
    accounts = fleet_file(root / "accounts.json", FLEET + KEYS)
    for account in accounts:  # whitelisted here and young: keys that verify without a warning
        account["ip_whitelist"] = ["127.0.0.1"]
        account["created_at"] = int((time.time() - 20 * 86_400) * 1000)
    (root / "accounts.json").write_text(json.dumps({"accounts": accounts}))
    data = key_file(accounts[FLEET:])
    sim = SimulatorProcess(root / "accounts.json", LATENCY_MS)
    try:
        traffic = Traffic()
        kucoin = KucoinTarget(
            sim.spot_url,
            sim.futures_url,
            transport=CountingTransport(traffic),
            ip_budget=k.DEFAULT_IP_BUDGET,
        )
        console = bound_console(root / "data", kucoin, accounts[:FLEET])
        started = time.monotonic()
        preview = bulk_import.preview_import(console, data, name="desk.csv")
        wall = time.monotonic() - started
        requests, peak = len(traffic.spans), traffic.peak
        started = time.monotonic()
        summary = bulk_import.confirm_import(console, preview.token, accept_warnings=True)
        saving = time.monotonic() - started
        console.close()
    finally:
        sim.stop()
    budget_rps = k.DEFAULT_IP_BUDGET / k.CDN_IP_WINDOW_S
    floor = max(requests * LATENCY_MS / 1000 / max(peak, 1), requests / budget_rps)
    decisions = Counter(line.verdict.value for line in preview.lines)
    return {
        "wall": wall,
        "requests": requests,
        "concurrency": peak,
        "floor": floor,
        "ratio": wall / floor,
        "refused": traffic.refused,
        "ready": preview.count(Verdict.READY),
        "decisions": ", ".join(f"{n} {d}" for d, n in decisions.most_common()),
        "bound": summary.bound,
        "saving": saving,
        "rss_mb": peak_rss_mb(),
    }


def main() -> bool:
    """Run the import bench; print it against its target and return whether it met it."""
    logging.getLogger("lib.vault").setLevel(logging.ERROR)  # "created a new master key file"
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory(prefix="bindwatch-bench-import-") as tmp:
        r = import_run(Path(tmp))
    print(
        f"import of {KEYS} keys into a fleet of {FLEET:,} at {LATENCY_MS} ms: preview wall "
        f"{r['wall']:.1f} s ({r['decisions']}), {r['requests']} requests, peak "
        f"{r['concurrency']} in flight, floor {r['floor']:.1f} s, ratio {r['ratio']:.2f} "
        f"(target <= {TARGET_RATIO}), 429s {r['refused']} (target 0)"
    )
    print(
        f"  confirming: {r['bound']} bound in {r['saving']:.1f} s; peak memory {r['rss_mb']:.0f} MB"
    )
    on_target = r["ratio"] <= TARGET_RATIO and r["refused"] == 0 and r["ready"] == KEYS
    on_target &= r["bound"] == KEYS
    print("OK" if on_target else "MISSED A TARGET")
    return on_target


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

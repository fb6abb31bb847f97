"""Take the README's screenshots from a served console showing the demo fleet.

    .venv/bin/python tools/screenshots.py [--out docs/screenshots]

Serves the console as `make run` does over a throwaway data directory (the browser tests'
harness, tests/served_app.py), opens the demo fleet in Debian's Chromium at 1440x900, and saves
the Fleet page and one account's diagnosis as PNG files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from served_app import CHROMIUM, CHROMIUM_ARGS, expect, serve, session, settle  # noqa: E402

from lib.console import Console  # noqa: E402
from lib.console.demo import demo_config  # noqa: E402

FLEET_PNG = "fleet.png"
ACCOUNT_PNG = "account-diagnosis.png"
ACCOUNT_SHOWN = "office-bot"  # IP_BLOCKED: KuCoin refuses the IP it saw, which the fix names


def demo_account_id(data_dir: Path, label: str) -> int:
    """Return the id of a demo account, read from the demo's own database."""
    console = Console.open(demo_config(data_dir / "demo"))
    try:
        return console.account(label).account.id
    finally:
        console.close()


def take(out: Path) -> list[Path]:
    """Serve the console with the demo fleet and save the screenshots in `out`."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        data_dir = Path(tmp) / "data"
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        with serve(data_dir) as app, session(browser, f"{app.url}/?demo=1") as page:
            table = page.get_by_test_id("stDataFrame")
            table.wait_for(timeout=120_000)  # the first visit builds the demo fleet
            settle(page)
            expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
            page.screenshot(path=out / FLEET_PNG)
            account = demo_account_id(data_dir, ACCOUNT_SHOWN)
            page.goto(f"{app.url}/account?demo=1&account={account}")
            settle(page)
            expect(page.get_by_role("heading", name=ACCOUNT_SHOWN)).to_be_visible()
            expect(page.get_by_test_id("stMetric").first).to_be_visible()
            expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
            page.screenshot(path=out / ACCOUNT_PNG)
        browser.close()
    return [out / FLEET_PNG, out / ACCOUNT_PNG]


def main() -> int:
    """Take the screenshots where --out says (docs/screenshots by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    for path in take(parser.parse_args().out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the Fleet page in Chromium on a served console, and the server's memory.

10,000 accounts x 30 checks are seeded into a SQLite file (not timed); the console is served
exactly as `make run` serves it (tests/served_app.py) and driven with Playwright:

- first load: a new browser session opens the page; timed until the table draws its first
  account: a returning operator's (the app's scripts cached), a new browser's (nothing
  cached), and the first session of a freshly started server.
- rerun: a search typed and committed, until the table draws a match it did not show before;
  then the search cleared, until it draws an account the search had hidden.

"Draws" is read from the grid's canvas (each label it paints, with the time). The grid's
accessibility table (its aria-rowcount) follows about 0.25 s later, whatever the page: each run
also waits for it, untimed, to check the whole table arrived, and prints its time beside.
- memory: the served process's peak resident set (VmHWM) with 5 sessions on the page, and
  what it is made of: the server after start, the operators' sign-ins (Argon2id), the pages.
- Streamlit's own floor: the same search on a page holding only a search box and a 10,000-row
  table (bench/floor_app.py).

Run from the repository root: `python -m bench.bench_page` (needs Playwright and Chromium).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from statistics import median

from bench.bench_fleet import seeded_data_dir
from bench.report import Figure
from lib.config import REPO_ROOT

ACCOUNTS = 10_000
SESSIONS = 5
REPEATS = 5
FIRST_LOAD_TARGET_S = 2.0
RERUN_TARGET_S = 0.2
MEMORY_TARGET_MB = 300
ROWS_ON_FLOOR = 10_000  # bench/floor_app.py's table
SEARCH = "acct-0001"  # acct-00010 … acct-00019 and acct-0001x: eleven accounts
TIMEOUT_MS = 120_000


def _served_app():
    """Return tests/served_app.py, the harness the journeys use, or None without a browser."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    try:
        import served_app  # only the browser bench needs it (and Playwright, pytest)
    except BaseException as error:  # it skips (pytest's Skipped) where Chromium is missing
        print(f"Fleet page in Chromium: not measured ({error})")
        return None
    return served_app


def _wait_rows(page, count: int) -> None:
    """Wait until the table holds `count` accounts."""
    page.wait_for_function(
        """count => {
            const grid = document.querySelector("[data-testid='stDataFrame'] table[role='grid']");
            return grid !== null && Number(grid.getAttribute("aria-rowcount")) - 1 === count;
        }""",
        arg=count,
        timeout=TIMEOUT_MS,
        polling="raf",
    )


# Records, in the page, when the grid's canvas paints each account's label, and when Enter went.
PAINT_PROBE = """
window.__painted = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
  if (typeof text === "string" && text.startsWith("acct-")) {
    window.__painted.push([performance.now(), text]);
  }
  return fillText.call(this, text, ...rest);
};
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter") window.__enter = performance.now();
}, true);
"""
LABELS_SHOWN = """() => Array.from(
  document.querySelectorAll("[data-testid='stDataFrame'] table[role='grid'] td"),
  (cell) => cell.textContent,
).filter((text) => text.startsWith("acct-"))"""


def _wait_painted(page, label: str | None = None) -> None:
    """Wait until the grid paints `label` (any account's label if None) after the last mark."""
    page.wait_for_function(
        """label => window.__painted.some(([, text]) => label === null || text === label)""",
        arg=label,
        timeout=TIMEOUT_MS,
        polling="raf",
    )


def _mark(page) -> None:
    """Forget what the grid painted so far."""
    page.evaluate("window.__painted = []")


def _serve(served, data_dir: Path):
    """Serve the console over `data_dir` as `make run` does, without a watcher checking it."""
    return served.serve(data_dir, env={"BINDWATCH_WATCH": "0"})


def first_load(served, page, url: str, accounts: int = ACCOUNTS) -> float:
    """Return the seconds from opening the page in a new session to the table's first rows."""
    page.add_init_script(PAINT_PROBE)
    started = time.perf_counter()
    page.goto(url)
    _wait_painted(page)
    took = time.perf_counter() - started
    _wait_rows(page, accounts)  # the whole table arrived
    served.settle(page)
    served.assert_no_exception(page)
    return took


def first_loads(served, browser, data_dir: Path) -> tuple[list[float], list[float], list[float]]:
    """Return the first loads: a new server's first session, a new browser, a returning one.

    A new browser has nothing cached: it fetches the app's scripts as the page needs them.
    A returning operator's browser has them (Streamlit serves them immutable): a new tab.
    """
    cold, new, returning = [], [], []
    for _ in range(REPEATS):
        with _serve(served, data_dir) as app:
            with served.session(browser, app=app.url) as page:
                cold.append(first_load(served, page, app.url))
            with served.session(browser, app=app.url) as page:
                new.append(first_load(served, page, app.url))
                tab = page.context.new_page()
                returning.append(first_load(served, tab, app.url))
    return cold, new, returning


def reruns(
    served, browser, url: str, matches: int, operator: str | None = "admin"
) -> tuple[list[float], list[float]]:
    """Return the seconds a search takes to draw its matches, and clearing it to draw the rest.

    Timed from Enter to the grid painting a label it did not show before: a match below the
    first rows for the search, one of the accounts it hid for the clearing.
    """
    searches, clears, behind = [], [], []
    with served.session(browser, operator=operator, app=url) as page:
        page.add_init_script(PAINT_PROBE)
        served.goto(page, url)
        _wait_rows(page, ACCOUNTS)
        search = page.get_by_role("textbox", name="Search")
        every = page.evaluate(LABELS_SHOWN)
        _commit(served, page, search, SEARCH, matches)
        found = page.evaluate(LABELS_SHOWN)
        _commit(served, page, search, "", ACCOUNTS)
        new_match = [label for label in found if label not in every][-1]
        hidden = [label for label in every if label not in found][-1]
        for _ in range(REPEATS):
            for text, count, label, took in (
                (SEARCH, matches, new_match, searches),
                ("", ACCOUNTS, hidden, clears),
            ):
                search.fill(text)
                _mark(page)
                started = time.perf_counter()
                search.press("Enter")
                _wait_painted(page, label)
                took.append(time.perf_counter() - started)
                _wait_rows(page, count)
                behind.append(time.perf_counter() - started - took[-1])
                served.settle(page)
        served.assert_no_exception(page)
    print(f"  the grid's aria-rowcount followed the paint by {median(behind):.2f} s (median)")
    return searches, clears


def _commit(served, page, search, text: str, count: int) -> None:
    """Search for `text` and wait until the table holds `count` accounts."""
    search.fill(text)
    search.press("Enter")
    _wait_rows(page, count)
    served.settle(page)


def floor_reruns(served, browser, data_dir: Path) -> tuple[list[float], list[float], list[float]]:
    """Return a new browser's first load, then the same search and clear, on bench/floor_app.py:
    Streamlit's and Chromium's part."""
    app_file = str(Path(__file__).with_name("floor_app.py").relative_to(REPO_ROOT))
    with served.serve(data_dir, entry=app_file, operators=False) as app:
        firsts = []
        for _ in range(REPEATS):
            with served.session(browser, operator=None, app=app.url) as page:
                firsts.append(first_load(served, page, app.url, ROWS_ON_FLOOR))
        return firsts, *reruns(served, browser, app.url, 10, operator=None)


def rss_mb(pid: int) -> dict[str, float]:
    """Return a process's resident set now and at its peak, in MB (Linux: VmRSS, VmHWM)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    if len(found) < 2:
        raise RuntimeError("no VmHWM in /proc: peak memory is measured on Linux only")
    return found


def memory_with_sessions(served, browser, data_dir: Path) -> float:
    """Return the served process's peak RSS (MB) after SESSIONS sessions opened the page.

    Also print its parts: the server once started, the peak of the sessions' sign-ins, and the
    peak of the pages alone (the kernel's peak is reset between: Linux's clear_refs).
    """
    with _serve(served, data_dir) as app, ExitStack() as stack:
        pid = app.process.pid
        started = rss_mb(pid)["VmRSS"]
        pages = [stack.enter_context(served.session(browser, app=app.url)) for _ in range(SESSIONS)]
        signed_in = rss_mb(pid)["VmHWM"]
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak := now
        for page in pages:
            page.goto(app.url)
            _wait_rows(page, ACCOUNTS)
            served.settle(page)
        now = rss_mb(pid)
    print(
        f"  memory: {started:.0f} MB once started; {signed_in:.0f} MB at the peak of "
        f"{SESSIONS} sign-ins (Argon2id takes 64 MiB each); the pages alone peak at "
        f"{now['VmHWM']:.0f} MB, {now['VmRSS']:.0f} MB with all {SESSIONS} open"
    )
    return max(signed_in, now["VmHWM"])


def main() -> list[Figure]:
    """Seed 10,000 accounts, serve them and time the page in Chromium; return the figures."""
    served = _served_app()
    if served is None:
        return []
    logging.getLogger("lib.vault").setLevel(logging.ERROR)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bindwatch-bench-page-") as tmp:
        data_dir, matches = seeded_data_dir(Path(tmp), ACCOUNTS, SEARCH)
        print(f"Fleet page in Chromium, {ACCOUNTS:,} accounts; the search {SEARCH!r}: {matches}")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=served.CHROMIUM, headless=True, args=served.CHROMIUM_ARGS
            )
            try:
                cold, new, returning = first_loads(served, browser, data_dir)
                with _serve(served, data_dir) as app:
                    searches, clears = reruns(served, browser, app.url, matches)
                memory = memory_with_sessions(served, browser, data_dir)
                floor_firsts, floor_searches, floor_clears = floor_reruns(served, browser, data_dir)
            finally:
                browser.close()
    print(
        "  Streamlit's own floor, a page holding only a search box and a 10,000-row table: "
        f"a new browser's first load {median(floor_firsts):.2f} s, "
        f"a search {median(floor_searches):.2f} s, clearing it {median(floor_clears):.2f} s"
    )
    page = f"Fleet page, {ACCOUNTS:,} accounts, Chromium"
    first = f"{page}: first load to table visible"
    return [
        Figure(f"{first}, returning operator (scripts cached)", returning, FIRST_LOAD_TARGET_S),
        Figure(f"{first}, new browser (nothing cached)", new, FIRST_LOAD_TARGET_S),
        Figure(f"{first}, a new server's first session", cold, FIRST_LOAD_TARGET_S),
        Figure(f"{page}: rerun, a search", searches, RERUN_TARGET_S),
        Figure(f"{page}: rerun, clearing the search", clears, RERUN_TARGET_S),
        Figure(
            f"Streamlit process peak memory, {ACCOUNTS:,} accounts, {SESSIONS} sessions",
            [memory],
            MEMORY_TARGET_MB,
            unit="MB",
        ),
    ]


if __name__ == "__main__":
    for figure in main():
        print(figure)

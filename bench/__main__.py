"""Run every benchmark (`make bench`): each figure against its target; exit 1 if one misses.

The machine's load is printed before and after: on a shared machine, read the figures with it.
"""

from __future__ import annotations

import sys

from bench import bench_fleet, bench_health, bench_import, bench_page, bench_refresh
from bench.report import load


def main() -> int:
    """Run the rules, the table, the page in Chromium, the refresh and an import; print each."""
    print(f"bench: {load()}")
    print("== health rules (in memory) ==")
    figures = bench_health.main()
    print("\n== fleet table (SQLite file) ==")
    figures += bench_fleet.main()
    print("\n== Fleet page (served, Chromium) ==")
    figures += bench_page.main()
    print("\n== refresh and one check (the simulator over HTTP) ==")
    refresh_ok = bench_refresh.main()
    print("\n== bulk import (the simulator over HTTP) ==")
    import_ok = bench_import.main()
    print(f"\n== figures (medians; {load()}) ==")
    for figure in figures:
        print(figure)
    return 0 if refresh_ok and import_ok and all(figure.ok for figure in figures) else 1


if __name__ == "__main__":
    sys.exit(main())

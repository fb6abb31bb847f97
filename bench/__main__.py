"""Run every benchmark (`make bench`); exit 1 if the fleet table, a refresh or an import misses."""

from __future__ import annotations

import sys

from bench import bench_fleet, bench_health, bench_import, bench_refresh


def main() -> int:
    """Run the health-rules, fleet-table, refresh and import benches; return the status."""
    print("== health rules (in memory) ==")
    bench_health.main()
    print()
    print("== fleet table (SQLite file) ==")
    fleet_ok = bench_fleet.main()
    print()
    print("== refresh and one check (the simulator over HTTP) ==")
    refresh_ok = bench_refresh.main()
    print()
    print("== bulk import (the simulator over HTTP) ==")
    import_ok = bench_import.main()
    return 0 if fleet_ok and refresh_ok and import_ok else 1


if __name__ == "__main__":
    sys.exit(main())

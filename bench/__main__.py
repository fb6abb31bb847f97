"""Run every benchmark (`make bench`); exit 1 if the fleet table or a refresh misses its target."""

from __future__ import annotations

import sys

from bench import bench_fleet, bench_health, bench_refresh


def main() -> int:
    """Run the health-rules, fleet-table and refresh benches; return the status."""
    print("== health rules (in memory) ==")
    bench_health.main()
    print()
    print("== fleet table (SQLite file) ==")
    fleet_ok = bench_fleet.main()
    print()
    print("== refresh and one check (the simulator over HTTP) ==")
    refresh_ok = bench_refresh.main()
    return 0 if fleet_ok and refresh_ok else 1


if __name__ == "__main__":
    sys.exit(main())

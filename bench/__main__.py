"""Run every benchmark (`make bench`); exit 1 if the fleet table misses its target."""

from __future__ import annotations

import sys

from bench import bench_fleet, bench_health


def main() -> int:
    """Run the health-rules bench, then the fleet-table bench from SQLite; return the status."""
    print("== health rules (in memory) ==")
    bench_health.main()
    print()
    print("== fleet table (SQLite file) ==")
    return 0 if bench_fleet.main() else 1


if __name__ == "__main__":
    sys.exit(main())

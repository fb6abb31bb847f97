"""A benchmark's figure against its target, and the machine's load while it ran."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured figure: every run's value, the target the median must stay under."""

    name: str
    runs: list[float]
    target: float
    unit: str = "s"

    @property
    def median(self) -> float:
        """Return the median run."""
        return statistics.median(self.runs)

    @property
    def ok(self) -> bool:
        """Return whether the median meets the target."""
        return self.median < self.target

    def shown(self, value: float) -> str:
        """Return a value in the figure's unit ("0.43 s", "281 MB")."""
        return f"{value:.0f} MB" if self.unit == "MB" else f"{value:.2f} s"

    def __str__(self) -> str:
        spread = (
            f" ({self.shown(min(self.runs))}–{self.shown(max(self.runs))}, {len(self.runs)} runs)"
            if len(self.runs) > 1
            else ""
        )
        verdict = "PASS" if self.ok else "FAIL"
        return (
            f"{self.name}: {self.shown(self.median)}{spread}, "
            f"target < {self.shown(self.target)}: {verdict}"
        )


def times(run: Callable[[], object], repeats: int) -> list[float]:
    """Return the wall times in seconds of `repeats` runs of `run`."""
    taken = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        taken.append(time.perf_counter() - started)
    return taken


def load() -> str:
    """Return the load averages over 1, 5 and 15 minutes and the cores (as `uptime` says)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"

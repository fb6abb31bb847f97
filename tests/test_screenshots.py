"""The README's screenshots are taken by tools/screenshots.py from a served console."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from served_app import VIEWPORT

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "screenshots.py"
COMMITTED = ROOT / "docs" / "screenshots"


def png_size(path: Path) -> tuple[int, int]:
    """Return a PNG file's width and height, read from its header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


@pytest.mark.slow
def test_the_script_takes_the_fleet_and_a_diagnosis_at_the_operators_screen_size(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    taken = sorted(p.name for p in tmp_path.glob("*.png"))
    assert taken == sorted(p.name for p in COMMITTED.glob("*.png")) != []
    for name in taken:
        assert png_size(tmp_path / name) == (VIEWPORT["width"], VIEWPORT["height"])

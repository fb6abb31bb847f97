"""The README's status table names every status, in severity order, in the console's colours."""

from __future__ import annotations

import re
from pathlib import Path

from lib.health.status import SEVERITY
from lib.ui.presentation import status_colour

README = Path(__file__).resolve().parent.parent / "README.md"
STATUS_TABLE = "### 8. Every status, its meaning and its fix"


def status_rows() -> list[tuple[str, str]]:
    """Return (status, colour) for each row of the README's status table."""
    text = README.read_text()
    section = text[text.index(STATUS_TABLE) :]
    section = section[: section.index("\n### ", 1)]
    return re.findall(r"^\| `([A-Z_]+)` \| (\w+) \|", section, flags=re.M)


def test_the_status_table_lists_every_status_worst_first_in_its_colour():
    assert status_rows() == [(s.value, status_colour(s.value)) for s in SEVERITY]

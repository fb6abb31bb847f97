"""What an operator may give for an account: its label, its scopes, and pasted text.

The one definition of these rules: binding checks a paste with them and tells the operator
what to fix; the store asks them again before it writes, so no caller can save what binding
would refuse.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

SCOPES = ("spot", "futures", "margin")  # what the platform may need a key for, in this order
LABEL_MAX = 200
# Labels are shown in Markdown on every page: characters that format, link or typeset math
# there (* [ ] ! < > ` # | ~ \ $) are refused rather than escaped at each place.
LABEL_PUNCTUATION = set(" -_.:/@+()&,'\"=%;")
# Line and paragraph separators, control and format characters (zero-width, BOM, bidi marks).
CONTROL_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


def label_problem(label: str) -> str | None:
    """Return what is wrong with an account label, or None when it is fine."""
    if not label:
        return "Give the account a label, e.g. the trader or bot that uses the key."
    if len(label) > LABEL_MAX:
        return f"A label is at most {LABEL_MAX} characters."
    odd = sorted({ch for ch in label if not ch.isalnum() and ch not in LABEL_PUNCTUATION})
    if odd:
        shown = " ".join(ch if ch.isprintable() else repr(ch) for ch in odd)
        return (
            "A label may hold letters, digits, spaces and - _ . : / @ + ( ) & , ' \" = % ; "
            f"only; remove: {shown}"
        )
    return None


def control_character_position(value: str) -> int | None:
    """Return the 1-based position of the first control character, or None."""
    for position, ch in enumerate(value, start=1):
        if unicodedata.category(ch) in CONTROL_CATEGORIES:
            return position
    return None


def clean_scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    """Return the needed scopes, lower-case, known and ordered; raise ValueError otherwise."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    wanted = {str(s).strip().lower() for s in items if s and str(s).strip()}
    unknown = wanted - set(SCOPES)
    if unknown:
        raise ValueError(
            f"unknown scope {', '.join(sorted(unknown))}: choose among {', '.join(SCOPES)}"
        )
    if not wanted:
        raise ValueError(f"choose at least one scope among {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)

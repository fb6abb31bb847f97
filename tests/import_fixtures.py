"""A desk's worth of simulated keys and the file that imports them, each line a known case.

`desk_file(simulator)` adds the keys to a running simulator and returns the CSV text of a
50-line file with what each line must become: good keys, wrong passphrases, swapped fields,
pasted whitespace, duplicates (of a bound account, of another line's key or label), missing
scopes and keys whitelisted elsewhere. Every secret and passphrase holds CANARY.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass

from app_fixtures import TRADER, SimEnv, days_ago_ms

from lib.console import binding
from lib.kucoin.sim import SimAccount, Simulator

CANARY = "CANARY"
COLUMNS = ["label", "api_key", "api_secret", "passphrase", "scopes", "note"]


def sim_key(n: int, **traits) -> SimAccount:
    """Return simulated key number n: General+Spot, whitelisted here, young (traits change it)."""
    values = {
        "api_key": f"{0xABC000000000 + n:024x}",
        "api_secret": str(uuid.UUID(int=0xC0FFEE << 64 | n)),
        "passphrase": f"{CANARY}-pass-{n}",
        "uid": 880_000_000 + n,
        "permissions": ("General", "Spot"),
        "ip_whitelist": ("127.0.0.1",),
        "created_at": days_ago_ms(20),
    }
    return SimAccount(**{**values, **traits})


@dataclass(frozen=True)
class Line:
    """One line of the file and what the import must make of it."""

    values: dict[str, str]
    verdict: str  # the preview's decision
    bound: bool  # whether confirming with warnings accepted (not unverified) binds it


def line(account: SimAccount, label: str, verdict: str, bound: bool, **changes) -> Line:
    """Return a line for a simulated key (with any cell changed)."""
    values = {
        "label": label,
        "api_key": account.api_key,
        "api_secret": account.api_secret.reveal(),
        "passphrase": account.passphrase.reveal(),
        "scopes": "spot",
        "note": "",
    }
    return Line({**values, **changes}, verdict, bound)


def desk_lines(simulator: Simulator, bound_already: SimAccount) -> list[Line]:
    """Add the desk's keys to the simulator; return the file's 50 lines, in order."""
    keys = [sim_key(n) for n in range(1, 41)]
    keys += [sim_key(n, ip_whitelist=("198.51.100.7",)) for n in range(41, 44)]
    keys += [sim_key(n, permissions=("General", "Spot", "Futures")) for n in range(44, 46)]
    for key in keys:
        simulator.add_account(key)
    good = [line(keys[n], f"desk-{n + 1:02d}", "ready", True) for n in range(20)]
    wrong_passphrase = [
        line(keys[n], f"desk-{n + 1:02d}", "refused", False, passphrase=f"{CANARY}-wrong-{n}")
        for n in range(20, 25)
    ]
    swapped = [
        line(
            keys[n],
            f"desk-{n + 1:02d}",
            "refused",
            False,
            api_key=keys[n].api_secret.reveal(),
            api_secret=keys[n].api_key,
        )
        for n in range(25, 29)
    ]
    whitespace = [
        line(
            keys[n],
            f"  desk-{n + 1:02d} ",
            "ready",
            True,
            api_key=f" {keys[n].api_key[:12]}\u200b{keys[n].api_key[12:]} ",
            api_secret=f"{keys[n].api_secret.reveal()}\n",
            passphrase=f" {keys[n].passphrase.reveal()}",
        )
        for n in range(29, 34)
    ]
    missing_scopes = [
        line(keys[n], f"desk-{n + 1:02d}", "refused", False, scopes="") for n in (34, 35)
    ]
    # The account needs futures; the key has no Futures permission: verified, with a warning.
    lacking = [
        line(keys[n], f"desk-{n + 1:02d}", "needs confirmation", True, scopes="spot;futures")
        for n in (36, 37)
    ]
    futures = [
        line(keys[n], f"desk-{n + 1:02d}", "ready", True, scopes="spot;futures") for n in (43, 44)
    ]
    elsewhere = [
        line(keys[n], f"desk-{n + 1:02d}", "needs confirmation", False) for n in (40, 41, 42)
    ]
    duplicates = [
        line(keys[0], "desk-again-01", "duplicate", False),  # the key of line 2
        line(keys[1], "desk-again-02", "duplicate", False),
        line(keys[38], "desk-01", "duplicate", False),  # the label of line 2
        line(bound_already, "bound-again", "duplicate", False),  # bound before the import
        line(keys[39], "existing", "refused", False),  # the label of a bound account
    ]
    labels_refused = [line(keys[39], "desk <b>", "refused", False)]
    with_note = [line(keys[38], "desk-39", "ready", True, note="market maker, Tokyo")]
    lines = (
        good
        + wrong_passphrase
        + swapped
        + whitespace
        + missing_scopes
        + lacking
        + futures
        + elsewhere
        + duplicates
        + labels_refused
        + with_note
    )
    return lines


def csv_text(lines: list[Line]) -> str:
    """Return the CSV file of these lines, under the template's header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for one in lines:
        writer.writerow(one.values)
    return out.getvalue()


def bind_existing(env: SimEnv) -> None:
    """Bind TRADER as 'existing' before an import of desk_lines(..., TRADER)."""
    binding.bind(
        env.console,
        label="existing",
        api_key=TRADER.api_key,
        api_secret=TRADER.api_secret,
        passphrase=TRADER.passphrase,
    )

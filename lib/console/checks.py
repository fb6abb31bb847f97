"""Checking accounts live: one now ("Check now"), every account ("Refresh all"), or a round.

All of them go through the engine (lib.console.refresh): each result is stored as it arrives
with its audit row and the account's next due time; credentials are decrypted just in time.
A round claims its accounts with leases first (lib.store.claim_due), so that watchers and
refreshes sharing a database never check one account at the same time.
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from lib import store
from lib.console.refresh import REQUESTS_PER_CHECK, RunReport, check_targets, run_checks
from lib.health.schedule import next_check_at
from lib.kucoin import constants as k
from lib.kucoin.probe_result import ProbeResult

if TYPE_CHECKING:
    from lib.console import Console

LEASE_MARGIN_S = 60.0  # beyond the time a claim's checks should take: storing, a slow start


def run_owner(console: Console, kind: str = "refresh") -> str:
    """Return a name for one run's leases: who, what, where, and unique to the run."""
    return f"{console.actor} {kind} {socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lease_seconds(console: Console, accounts: int) -> float:
    """Return how long a claim of this many accounts is leased: twice their time, plus margin."""
    requests_per_s = console.kucoin.ip_budget / k.CDN_IP_WINDOW_S
    return 2 * accounts * REQUESTS_PER_CHECK / requests_per_s + k.CHECK_DEADLINE_S + LEASE_MARGIN_S


def schedule_new_accounts(console: Console) -> int:
    """Give each bound account without a schedule its first due time; return how many."""
    policy = console.policy()
    now = datetime.now(UTC)
    with console.transaction() as session:
        new = store.unscheduled_accounts(session)
        store.schedule_checks(
            session,
            {a: next_check_at(latest, policy, now, random.random()) for a, latest in new.items()},
        )
    return len(new)


def check_account(console: Console, account_id: int) -> ProbeResult:
    """Check one account's key now, record the result and audit it; return the result."""
    console.require_admin("check an account with KuCoin")
    with console.reading() as session:
        account = store.get_account(session, account_id)
    if not account.bound:
        with console.reading() as session:
            store.load_credentials(session, console.vault, account_id)  # raises AccountUnbound
    report = run_checks(
        console, check_targets(console, [account_id]), owner=run_owner(console, "check")
    )
    if account_id not in report.results:
        raise store.AccountUnbound(f"Account {account.label!r} was unbound during its check.")
    return report.results[account_id]


def check_round(
    console: Console,
    *,
    owner: str,
    due_only: bool = True,
    account_ids: Iterable[int] | None = None,
    batch: int | None = None,
    on_stored: Callable[[int, ProbeResult], None] | None = None,
    may_start: Callable[[], bool] = lambda: True,
) -> RunReport:
    """Claim and check accounts: those due (or all), `batch` at a time; return what was stored.

    With `due_only`, batches are claimed until none is due (a checked account's next due time
    moves on); otherwise every account is claimed at once. Paused accounts are checked only
    when named in `account_ids`.
    """
    schedule_new_accounts(console)
    ids = None if account_ids is None else [int(a) for a in account_ids]
    report = RunReport()
    while may_start():
        limit = batch if batch and due_only else 1_000_000_000
        now = datetime.now(UTC)
        with console.transaction() as session:
            claimed = store.claim_due(
                session,
                owner,
                now=now,
                lease_until=now + timedelta(seconds=lease_seconds(console, min(limit, 10_000))),
                limit=limit,
                account_ids=ids,
                due_only=due_only,
                include_paused=ids is not None,
            )
        if not claimed:
            break
        part = run_checks(
            console,
            check_targets(console, claimed),
            owner=owner,
            on_stored=on_stored,
            may_start=may_start,
        )
        report.results.update(part.results)
        report.skipped.extend(part.skipped)
        if not (batch and due_only):
            break
    report.finished_at = datetime.now(UTC)
    return report


def refresh_fleet(
    console: Console,
    account_ids: Iterable[int] | None = None,
    *,
    on_result: Callable[[int, ProbeResult], None] | None = None,
) -> dict[int, ProbeResult]:
    """Check every bound, non-paused account (or the given ones) now; record each as it lands.

    An account another watcher is checking at this moment is left to it.
    """
    console.require_admin("check accounts with KuCoin")
    report = check_round(
        console,
        owner=run_owner(console),
        due_only=False,
        account_ids=account_ids,
        on_stored=on_result,
    )
    return report.results


def refreshable_count(console: Console) -> int:
    """Return how many accounts "Refresh all" would check (bound and not paused)."""
    with console.reading() as session:
        accounts = store.accounts_frame(session)
    return int((~accounts["paused"]).sum())

"""Checking accounts live: one now ("Check now"), or every account at once ("Refresh all").

Each result is recorded and audited as it arrives; credentials are decrypted just in time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from lib import store
from lib.console.refresh import RefreshTarget, refresh
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import ProbeResult

if TYPE_CHECKING:
    from lib.console import Console


def check_account(console: Console, account_id: int) -> ProbeResult:
    """Probe one account's key now, record the result and audit it; return the result."""
    console.require_admin("check an account with KuCoin")
    with console.reading() as session:
        credentials = store.load_credentials(session, console.vault, account_id)
        account = store.get_account(session, account_id)
        settings = store.get_settings(session)
    result = console.kucoin.probe(
        credentials,
        futures_currencies=settings.futures_currencies,
        want_futures="futures" in account.scopes,
    )
    del credentials
    with console.transaction() as session:
        store.mark_verified(session, account_id, result, actor=console.actor)
    return result


def refresh_fleet(
    console: Console,
    account_ids: Iterable[int] | None = None,
    *,
    concurrency: int = 8,
    on_result: Callable[[int, ProbeResult], None] | None = None,
) -> dict[int, ProbeResult]:
    """Probe every bound, non-paused account (or the given ones) concurrently; record each."""
    console.require_admin("check accounts with KuCoin")
    with console.reading() as session:
        accounts = store.accounts_frame(session)
        latest = store.latest_probes_frame(session, columns=["uid"])
        settings = store.get_settings(session)
    if account_ids is not None:
        accounts = accounts[accounts["account_id"].isin(list(account_ids))]
    else:
        accounts = accounts[~accounts["paused"]]
    uids = dict(zip(latest["account_id"], latest["uid"], strict=True)) if len(latest) else {}

    def loader(account_id: int) -> Callable[[], Credentials]:
        """Return what decrypts this account's credentials when its turn comes."""

        def load() -> Credentials:
            """Return the credentials, decrypted now."""
            with console.reading() as session:
                return store.load_credentials(session, console.vault, account_id)

        return load

    targets = [
        RefreshTarget(int(a), loader(int(a)), uids.get(a) if isinstance(uids.get(a), str) else None)
        for a in accounts["account_id"]
    ]

    def record(account_id: int, result: ProbeResult) -> None:
        """Store one result as it arrives."""
        # One transaction per result: a crash mid-refresh loses nothing already checked.
        with console.transaction() as session:
            store.mark_verified(session, account_id, result, actor=console.actor)
        if on_result:
            on_result(account_id, result)

    return refresh(
        targets,
        kucoin=console.kucoin,
        concurrency=concurrency,
        futures_currencies=settings.futures_currencies,
        on_result=record,
    )


def refreshable_count(console: Console) -> int:
    """Return how many accounts "Refresh all" would check (bound and not paused)."""
    with console.reading() as session:
        accounts = store.accounts_frame(session)
    return int((~accounts["paused"]).sum())

"""The fleet: check accounts live, record what was seen, and build the tables pages show."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from lib import health, store
from lib.console import Console, policy_from_settings
from lib.kucoin.probe import probe
from lib.kucoin.probe_result import ProbeResult
from lib.refresh import RefreshTarget, refresh


def fleet_table(console: Console, now: datetime | None = None) -> pd.DataFrame:
    """Return one row per bound account, worst status first (health.FLEET_COLUMNS)."""
    with console.reading() as session:
        accounts = store.accounts_frame(session)
        probes = store.probe_history_frame(session)
        policy = store.get_settings(session)
    return health.fleet_health(
        accounts, probes, policy_from_settings(policy), now or datetime.now(UTC)
    )


def check_account(console: Console, account_id: int) -> ProbeResult:
    """Probe one account's key now, record the result and audit it; return the result."""
    with console.reading() as session:
        credentials = store.load_credentials(session, console.vault, account_id)
        account = store.get_account(session, account_id)
        settings = store.get_settings(session)
    result = probe(
        credentials,
        futures_currencies=settings.futures_currencies,
        want_futures="futures" in account.scopes,
        **console.kucoin.client_kwargs(),
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
    with console.reading() as session:
        accounts = store.accounts_frame(session)
        latest = store.latest_probes_frame(session)
        settings = store.get_settings(session)
    if account_ids is not None:
        accounts = accounts[accounts["account_id"].isin(list(account_ids))]
    else:
        accounts = accounts[~accounts["paused"]]
    uids = dict(zip(latest["account_id"], latest["uid"], strict=True)) if len(latest) else {}

    def loader(account_id: int) -> Callable:
        def load():
            with console.reading() as session:
                return store.load_credentials(session, console.vault, account_id)

        return load

    targets = [
        RefreshTarget(int(a), loader(int(a)), uids.get(a) if isinstance(uids.get(a), str) else None)
        for a in accounts["account_id"]
    ]

    def record(account_id: int, result: ProbeResult) -> None:
        # One transaction per result: a crash mid-refresh loses nothing already checked.
        with console.transaction() as session:
            store.mark_verified(session, account_id, result, actor=console.actor)
        if on_result:
            on_result(account_id, result)

    return refresh(
        targets,
        concurrency=concurrency,
        futures_currencies=settings.futures_currencies,
        on_result=record,
        **console.kucoin.client_kwargs(),
    )


@dataclass(frozen=True)
class AccountDetail:
    """Everything the account page shows about one account; no secret."""

    account: store.AccountView
    health: pd.Series
    permissions: pd.DataFrame
    whitelist: pd.DataFrame
    spot_balances: pd.DataFrame
    futures_balances: pd.DataFrame
    history: pd.DataFrame
    latest: ProbeResult | None
    audit: list[store.AuditEntry]


def account_detail(console: Console, account_id: int, now: datetime | None = None) -> AccountDetail:
    """Return the account page's data for one account."""
    now = now or datetime.now(UTC)
    with console.reading() as session:
        account = store.get_account(session, account_id)
        accounts = store.accounts_frame(session, include_unbound=True)
        probes = store.probe_history_frame(session)
        latest = store.latest_probe(session, account_id)
        settings = store.get_settings(session)
        audit = store.audit_log(session, account_id=account_id)
    policy = policy_from_settings(settings)
    mine = probes[probes["account_id"] == account_id].sort_values("checked_at")
    row = accounts[accounts["account_id"] == account_id].iloc[0]
    last_ok = latest if latest is not None and latest.ok else _last_ok(console, account_id)
    return AccountDetail(
        account=account,
        health=health.account_health(row, mine, policy, now),
        permissions=health.permission_coverage(
            account.scopes,
            last_ok.permissions if last_ok else None,
            last_ok.futures_permission_missing if last_ok else False,
        ),
        whitelist=health.whitelist_coverage(mine, policy),
        spot_balances=spot_frame(last_ok),
        futures_balances=futures_frame(last_ok),
        history=mine[
            ["checked_at", "outcome", "code", "message", "http_status", "latency_ms"]
        ].reset_index(drop=True),
        latest=latest,
        audit=audit,
    )


def _last_ok(console: Console, account_id: int) -> ProbeResult | None:
    """Return the account's latest passing check, if any."""
    with console.reading() as session:
        for result in store.probe_history(session, account_id):
            if result.ok:
                return result
    return None


def spot_frame(result: ProbeResult | None) -> pd.DataFrame:
    """Return spot balances by account type and currency (non-zero rows)."""
    rows = [
        {
            "account_type": b.account_type,
            "currency": b.currency,
            "balance": float(b.balance),
            "available": float(b.available),
            "holds": float(b.holds),
        }
        for b in (result.spot_balances if result else ())
        if b.balance != 0
    ]
    columns = ["account_type", "currency", "balance", "available", "holds"]
    return pd.DataFrame(rows, columns=columns)


def futures_frame(result: ProbeResult | None) -> pd.DataFrame:
    """Return the futures overview per currency."""
    rows = [
        {
            "currency": currency,
            **{
                name: float(overview.get(name, Decimal(0)))
                for name in ("accountEquity", "availableBalance", "unrealisedPNL", "marginBalance")
            },
        }
        for currency, overview in (result.futures if result else {}).items()
    ]
    columns = ["currency", "accountEquity", "availableBalance", "unrealisedPNL", "marginBalance"]
    return pd.DataFrame(rows, columns=columns)

"""One account in full: everything the Account page shows about it; never a secret."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd

from lib import store
from lib.console.settings import policy_from_settings
from lib.health.account import account_health, permission_coverage, whitelist_coverage
from lib.health.coverage import whitelist_entries
from lib.health.fleet import check_results
from lib.kucoin.probe_result import Outcome, ProbeResult

if TYPE_CHECKING:
    from lib.console import Console


@dataclass(frozen=True, repr=False)
class AccountDetail:
    """Everything the account page shows about one account; no secret."""

    account: store.AccountView
    health: pd.Series
    permissions: pd.DataFrame
    whitelist: pd.DataFrame
    spot_balances: pd.DataFrame
    futures_balances: pd.DataFrame
    history: pd.DataFrame
    audit: list[store.AuditEntry]
    whitelist_entries: tuple[str, ...] = ()  # as KuCoin shows them (masked), last success
    balances_at: datetime | None = None  # when the balances shown were read

    def __repr__(self) -> str:
        """Return the account's status, diagnosis and next step, and what else it holds."""
        a, h = self.account, self.health
        return "\n".join(
            [
                f"{a.label} ({', '.join(a.scopes)}; key …{a.key_last4 or '----'}): {h['status']}",
                f"  diagnosis: {h['diagnosis']}",
                f"  next step: {h['hint']}",
                f"  {len(self.history)} checks in .history; .permissions, .whitelist, "
                ".spot_balances, .futures_balances, .audit",
            ]
        )


def account_detail(console: Console, account_id: int, now: datetime | None = None) -> AccountDetail:
    """Return the account page's data for one account (bound or unbound)."""
    now = now or datetime.now(UTC)
    with console.reading() as session:
        account = store.get_account(session, account_id)
        accounts = store.accounts_frame(session, include_unbound=True)
        mine = store.probe_history_frame(session, account_id=account_id)
        settings = store.get_settings(session)
        audit = store.audit_log(session, account_id=account_id, limit=200)
    policy = policy_from_settings(settings)
    row = accounts[accounts["account_id"] == account_id].iloc[0]
    ok_rows = mine[mine["outcome"] == Outcome.OK.value]
    last_ok = ok_rows.iloc[-1] if len(ok_rows) else None
    spot, futures = store.decode_balances(last_ok["balances_json"] if last_ok is not None else None)
    history = mine[
        ["checked_at", "outcome", "code", "message", "http_status", "endpoint", "latency_ms"]
    ].reset_index(drop=True)
    history.insert(1, "result", check_results(mine, policy).astype(str))
    return AccountDetail(
        account=account,
        health=account_health(row, mine, policy, now),
        permissions=permission_coverage(
            account.scopes,
            last_ok["permissions"] if last_ok is not None else None,
            bool(last_ok["futures_permission_missing"]) if last_ok is not None else False,
        ),
        whitelist=whitelist_coverage(mine, policy),
        spot_balances=spot_frame(spot),
        futures_balances=futures_frame(futures),
        history=history,
        audit=audit,
        whitelist_entries=whitelist_entries(
            last_ok["ip_whitelist"] if last_ok is not None else None
        ),
        balances_at=last_ok["checked_at"].to_pydatetime() if last_ok is not None else None,
    )


def spot_frame(balances: ProbeResult | Sequence[Any] | None) -> pd.DataFrame:
    """Return spot balances by account type and currency (non-zero rows)."""
    rows_in = balances.spot_balances if isinstance(balances, ProbeResult) else balances or ()
    rows = [
        {
            "account_type": b.account_type,
            "currency": b.currency,
            "balance": float(b.balance),
            "available": float(b.available),
            "holds": float(b.holds),
        }
        for b in rows_in
        if b.balance != 0
    ]
    columns = ["account_type", "currency", "balance", "available", "holds"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["account_type", "currency"], ignore_index=True)


FUTURES_FIELDS = ("accountEquity", "availableBalance", "unrealisedPNL", "marginBalance")


def futures_frame(
    futures: ProbeResult | dict[str, dict[str, Decimal]] | None,
) -> pd.DataFrame:
    """Return the futures overview per currency."""
    overviews = futures.futures if isinstance(futures, ProbeResult) else futures or {}
    rows = [
        {
            "currency": currency,
            **{name: float(overview.get(name, Decimal(0))) for name in FUTURES_FIELDS},
        }
        for currency, overview in overviews.items()
    ]
    return pd.DataFrame(rows, columns=["currency", *FUTURES_FIELDS])

"""The operator's console: what the app, the commands and a notebook do with bindwatch.

No Streamlit here: the pages (lib.ui) and the commands (lib.cli) are two faces of these.

    from lib.console import Console
    console = Console.open()                 # data/bindwatch.db and data/master.key
    fleet = console.fleet()                  # the same DataFrame the Fleet page shows

- Console (here): one installation's database, its vault, where KuCoin is, who acts.
- kucoin: KucoinTarget, where KuCoin is, and the typed calls made to it.
- binding: clean a pasted key, verify it live, save it; the account's lifecycle after that.
- import_file, bulk_import: many keys from a CSV or JSON file, each line checked as a single
  bind and the batch verified through the engine; saved once the preview is confirmed.
- fleet: the fleet table with its policy and time, its filters, a refresh's summary.
- checks: check one account now ("Check now"), every account ("Refresh all"), or a round.
- refresh: the engine every check goes through, within KuCoin's rate limits.
- watch: the watcher that checks accounts as they fall due, and its heartbeat.
- alerts: channels, transitions decided and sent off the check path, drift since binding.
- account: everything the Account page shows about one account.
- settings: the operator's settings, the health policy they define, their change log.
- export: the fleet as CSV and JSON, never a secret.
- demo: the demo fleet on a local simulator.
- operators: operators and their roles, signing in and out, sessions, the first admin.
- passwords: Argon2id hashes of operators' passwords.
- errors: every exception a page or a command may catch.
- notebook: what a notebook asks (the methods below): frames and small typed answers.

A console acts as one operator (`actor`) with one role: every service that changes something,
or calls KuCoin with a stored or pasted key, first asks `console.require_admin(...)`, so a
viewer is refused there whichever page, callback or script calls it. A browser's console
also asks the operator's session at that moment (`current_role`): an action from a page drawn
before the operator was signed out, removed or made a viewer is refused too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from lib import store
from lib.config import Config
from lib.console.fleet import fleet_table
from lib.console.kucoin import KucoinTarget
from lib.console.settings import policy_from_settings
from lib.health.policy import HealthPolicy
from lib.store import StoreError
from lib.store import database as db
from lib.store.models import Role, Settings
from lib.vault import Vault, open_vault

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from lib.console.account import AccountDetail
    from lib.console.notebook import CheckReport

__all__ = ["LOCAL_OPERATOR", "Console", "KucoinTarget", "NotPermitted", "Role"]

# Who acts from the command line: whoever can run it can read the key file, so an admin.
LOCAL_OPERATOR = "local-operator"


class NotPermitted(StoreError):
    """The operator's role does not allow this action; nothing was done."""


@dataclass(repr=False)
class Console:
    """A database, its vault, KuCoin's location and the operator acting."""

    engine: Engine
    vault: Vault = field(repr=False)
    kucoin: KucoinTarget = field(default_factory=KucoinTarget)
    actor: str = LOCAL_OPERATOR
    role: Role = Role.ADMIN
    # The operator's role now, asked before each action; None once their session has ended.
    current_role: Callable[[], Role | None] | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        config: Config | None = None,
        *,
        kucoin: KucoinTarget | None = None,
        actor: str = LOCAL_OPERATOR,
    ) -> Console:
        """Open the configured database (migrated) and its vault; fail closed on a bad key."""
        config = config or Config.from_env()
        engine = db.open_database(config.database_url)
        vault = open_vault(engine, config.master_key_file, private_dir=config.data_dir)
        return cls(engine, vault, kucoin or KucoinTarget.from_config(config), actor)

    def __repr__(self) -> str:
        """Return where the console's data and KuCoin are, and who acts (never a password)."""
        where = self.engine.url.render_as_string(hide_password=True)
        return (
            f"Console({where}, KuCoin at {self.kucoin.spot_url}, "
            f"acting as {self.actor} ({self.role.value}))"
        )

    def as_actor(
        self,
        actor: str,
        role: Role = Role.ADMIN,
        current_role: Callable[[], Role | None] | None = None,
    ) -> Console:
        """Return the same console acting as another operator, with that operator's role."""
        return Console(self.engine, self.vault, self.kucoin, actor, Role(role), current_role)

    @property
    def may_act(self) -> bool:
        """Return whether this operator may change anything (an admin)."""
        return self.role is Role.ADMIN

    def require_admin(self, doing: str) -> None:
        """Raise NotPermitted unless the operator is an admin; `doing` says what was refused."""
        role = self.role if self.current_role is None else self.current_role()
        if role is None:
            raise NotPermitted(
                f"The session of {self.actor} has ended: sign in again. Nothing was done."
            )
        if role is not Role.ADMIN:
            raise NotPermitted(
                f"{self.actor} signed in as a viewer, and only an admin may {doing}: nothing "
                "was done."
            )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session in one write transaction."""
        with db.transaction(self.engine) as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Yield a read-only session."""
        with db.read_session(self.engine) as session:
            yield session

    def settings(self) -> Settings:
        """Return the operator settings."""
        with self.reading() as session:
            return store.get_settings(session)

    def policy(self) -> HealthPolicy:
        """Return the health thresholds the settings define."""
        return policy_from_settings(self.settings())

    def fleet(self, now: datetime | None = None) -> pd.DataFrame:
        """Return the fleet table: one row per account, worst first (lib.console.fleet)."""
        return fleet_table(self, now)

    # --- For a notebook (lib.console.notebook): frames and small typed answers -------------

    def styled_fleet(self) -> Styler:
        """Return the fleet's main columns, each status coloured as on the Fleet page."""
        from lib.console.notebook import styled_fleet

        return styled_fleet(self.fleet())

    def account(self, label: str) -> AccountDetail:
        """Return everything the Account page shows about the account with this label."""
        from lib.console.notebook import account_by_label

        return account_by_label(self, label)

    def history(self, label: str) -> pd.DataFrame:
        """Return the account's checks, oldest first."""
        from lib.console.notebook import history

        return history(self, label)

    def check(self, label: str) -> CheckReport:
        """Check the account live now (recorded, audited); return KuCoin's answers and verdict."""
        from lib.console.notebook import check_report

        return check_report(self, label)

    def fleet_by(self, by: str) -> pd.DataFrame:
        """Return the number of accounts per "status", "uid" or "kind" (master/sub-account)."""
        from lib.console.notebook import fleet_by

        return fleet_by(self.fleet(), by)

    def expiring_keys(self, within_days: float = 7) -> pd.DataFrame:
        """Return keys KuCoin deletes if unused, or that reach the rotation age, within the days."""
        from lib.console.notebook import expiring_keys

        now = datetime.now(UTC)
        return expiring_keys(self.fleet(now), self.policy(), now, timedelta(days=within_days))

    def whitelist_matrix(self) -> pd.DataFrame:
        """Return, per account, whether its whitelist covers each platform egress IP."""
        from lib.console.notebook import whitelist_matrix

        return whitelist_matrix(self)

    def export_csv(self, path: str | Path) -> Path:
        """Write the fleet as the Fleet page's CSV (no secret) and return its path."""
        from lib.console.notebook import export_csv

        return export_csv(self.fleet(), path)

    def close(self) -> None:
        """Finish the alerts in hand for this database, then release its connections."""
        alerts = sys.modules.get("lib.console.alerts")  # no worker runs before it is loaded
        if alerts is not None:
            alerts.stop_worker(self)
        self.engine.dispose()

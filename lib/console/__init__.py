"""The operator's console: what the app, the commands and a notebook do with bindwatch.

No Streamlit here: the pages (lib.ui) and the commands (lib.cli) are two faces of these.

    from lib.console import Console
    console = Console.open()                 # data/bindwatch.db and data/master.key
    fleet = console.fleet()                  # the same DataFrame the Fleet page shows

- Console (here): one installation's database, its vault, where KuCoin is, who acts.
- kucoin: KucoinTarget, where KuCoin is, and the typed calls made to it.
- binding: clean a pasted key, verify it live, save it; the account's lifecycle after that.
- fleet: the fleet table with its policy and time, its filters, a refresh's summary.
- checks: check one account now ("Check now"), every account ("Refresh all"), or a round.
- refresh: the engine every check goes through, within KuCoin's rate limits.
- watch: the watcher that checks accounts as they fall due, and its heartbeat.
- account: everything the Account page shows about one account.
- settings: the operator's settings, the health policy they define, their change log.
- export: the fleet as CSV and JSON, never a secret.
- demo: the demo fleet on a local simulator.
- errors: every exception a page or a command may catch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from lib import store
from lib.config import Config
from lib.console.fleet import fleet_table
from lib.console.kucoin import KucoinTarget
from lib.console.settings import policy_from_settings
from lib.health.policy import HealthPolicy
from lib.store import database as db
from lib.store.models import Settings
from lib.vault import Vault, open_vault

__all__ = ["LOCAL_OPERATOR", "Console", "KucoinTarget"]

# Until operators log in, every action is recorded under this name.
LOCAL_OPERATOR = "local-operator"


@dataclass
class Console:
    """A database, its vault, KuCoin's location and the operator acting."""

    engine: Engine
    vault: Vault = field(repr=False)
    kucoin: KucoinTarget = field(default_factory=KucoinTarget)
    actor: str = LOCAL_OPERATOR

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

    def as_actor(self, actor: str) -> Console:
        """Return the same console acting as another operator."""
        return Console(self.engine, self.vault, self.kucoin, actor)

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

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

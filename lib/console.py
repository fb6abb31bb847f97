"""The operator's console: one object holding the database, the vault and where KuCoin is.

The app, the CLI and a notebook all start here:

    from lib.console import Console
    console = Console.open()                 # data/bindwatch.db and data/master.key
    fleet = console.fleet()                  # the same DataFrame the Fleet page shows
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from lib import db, store
from lib.config import Config
from lib.health.policy import HealthPolicy
from lib.kucoin import constants as k
from lib.models import Settings
from lib.vault import Vault, open_vault

# Until operators log in, every action is recorded under this name.
LOCAL_OPERATOR = "local-operator"


@dataclass(frozen=True)
class KucoinTarget:
    """Where KuCoin is: the real hosts, a simulator's URLs, or in-process transports."""

    spot_url: str = k.SPOT_URL
    futures_url: str = k.FUTURES_URL
    transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)
    futures_transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)
    timeout: float = 10.0

    @classmethod
    def from_config(cls, config: Config) -> KucoinTarget:
        """Return KuCoin's hosts as the configuration names them."""
        return cls(spot_url=config.kucoin_spot_url, futures_url=config.kucoin_futures_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KucoinTarget:
        """Return KuCoin's hosts, overridden by BINDWATCH_KUCOIN_SPOT_URL / _FUTURES_URL."""
        return cls.from_config(Config.from_env(environ))

    def with_urls(self, spot_url: str | None, futures_url: str | None) -> KucoinTarget:
        """Return this target with the URLs given instead (a command's --spot-url and such)."""
        return replace(
            self, spot_url=spot_url or self.spot_url, futures_url=futures_url or self.futures_url
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments for a KuCoin client or probe."""
        return {
            "spot_url": self.spot_url,
            "futures_url": self.futures_url,
            "transport": self.transport,
            "futures_transport": self.futures_transport,
            "timeout": self.timeout,
        }


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
        vault = open_vault(engine, config.master_key_file)
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
        """Return the fleet table: one row per account, worst first (see lib.fleet)."""
        from lib.fleet import fleet_table

        return fleet_table(self, now or datetime.now(UTC))

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


def policy_from_settings(settings: Settings) -> HealthPolicy:
    """Return the health policy for the operator's settings, each number held to its range."""
    # A value stored before its range existed must not break the rules (or overflow a timedelta).
    return HealthPolicy(
        egress_ips=settings.egress_ips,
        freshness_period=timedelta(seconds=store.setting_in_range(settings, "freshness_seconds")),
        freshness_grace=timedelta(
            seconds=store.setting_in_range(settings, "freshness_grace_seconds")
        ),
        rotation_age=timedelta(days=store.setting_in_range(settings, "rotation_age_days")),
    )

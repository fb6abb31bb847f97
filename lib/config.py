"""bindwatch's configuration, read once from the environment into one typed object.

Every command and the app read it here: where the data is, and where KuCoin is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lib.kucoin.constants import CDN_IP_WINDOW_S, DEFAULT_IP_BUDGET, FUTURES_URL, SPOT_URL

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

REPO_ROOT = Path(__file__).resolve().parent.parent

DATA_DIR_ENV = "BINDWATCH_DATA_DIR"
DATABASE_URL_ENV = "BINDWATCH_DATABASE_URL"
MASTER_KEY_FILE_ENV = "BINDWATCH_MASTER_KEY_FILE"
SPOT_URL_ENV = "BINDWATCH_KUCOIN_SPOT_URL"
FUTURES_URL_ENV = "BINDWATCH_KUCOIN_FUTURES_URL"
IP_BUDGET_ENV = "BINDWATCH_IP_BUDGET"
WATCH_ENV = "BINDWATCH_WATCH"
_OFF = ("0", "off", "false", "no")


@dataclass(frozen=True)
class Config:
    """One installation's data directory, database URL, master key file and KuCoin's URLs."""

    data_dir: Path
    database_url: str
    master_key_file: Path
    kucoin_spot_url: str = SPOT_URL
    kucoin_futures_url: str = FUTURES_URL
    # Requests to KuCoin this process may start per 10 s from its egress IP (all keys together).
    ip_budget: int = DEFAULT_IP_BUDGET
    # Whether the served console (`make run`) runs a watcher beside the app.
    watch_with_app: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Return what BINDWATCH_* variables name; data under data/ and real KuCoin by default."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get(DATA_DIR_ENV) or REPO_ROOT / "data").expanduser().absolute()
        database_url = env.get(DATABASE_URL_ENV) or f"sqlite:///{data_dir / 'bindwatch.db'}"
        key_file = env.get(MASTER_KEY_FILE_ENV)
        master_key_file = (
            Path(key_file).expanduser().absolute() if key_file else data_dir / "master.key"
        )
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            master_key_file=master_key_file,
            kucoin_spot_url=env.get(SPOT_URL_ENV) or SPOT_URL,
            kucoin_futures_url=env.get(FUTURES_URL_ENV) or FUTURES_URL,
            ip_budget=_ip_budget(env.get(IP_BUDGET_ENV)),
            watch_with_app=(env.get(WATCH_ENV) or "1").strip().lower() not in _OFF,
        )

    def ensure_data_dir(self) -> Path:
        """Create the data directory with mode 0700, or tighten it to 0700 if it is ours."""
        ensure_private_dir(self.data_dir)
        return self.data_dir

    def __repr__(self) -> str:
        # A PostgreSQL URL may carry a password: never print it.
        url = redact_url(self.database_url)
        return (
            f"Config(data_dir={str(self.data_dir)!r}, database_url={url!r}, "
            f"master_key_file={str(self.master_key_file)!r}, "
            f"kucoin_spot_url={self.kucoin_spot_url!r}, "
            f"kucoin_futures_url={self.kucoin_futures_url!r}, ip_budget={self.ip_budget}, "
            f"watch_with_app={self.watch_with_app})"
        )

    __str__ = __repr__


def _ip_budget(text: str | None) -> int:
    """Return the IP budget a BINDWATCH_IP_BUDGET value names; raise ValueError saying the fix."""
    if not text or not text.strip():
        return DEFAULT_IP_BUDGET
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 2:
        raise ValueError(
            f"{IP_BUDGET_ENV} must be a whole number of requests per {CDN_IP_WINDOW_S} s, at "
            f"least 2 (default {DEFAULT_IP_BUDGET}); got {text.strip()!r}"
        )
    return value


def ensure_private_dir(path: Path) -> None:
    """Create `path` with mode 0700, or remove group and other access if this user owns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        path.chmod(0o700)


def redact_url(url: str | URL) -> str:
    """Return the database URL with any password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"

"""Fixtures for the store and vault tests: a real database per test and a vault on it.

A test module imports the `*_fixture` functions it needs; pytest registers each under the name
given in its decorator (`engine`, `vault`, ...). `database_url` runs a test on a SQLite file in
tmp_path and on a fresh schema of the PostgreSQL server named by BINDWATCH_TEST_POSTGRES_URL
(skipped locally without it; a failure when CI=true).
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from lib.console import alerts
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import Outcome, ProbeResult, SpotBalance
from lib.store import database
from lib.vault import Vault, open_vault

POSTGRES_ENV = "BINDWATCH_TEST_POSTGRES_URL"
ACTOR = "alice"


def postgres_url() -> str:
    """Return the test server's URL; skip without one, but fail in CI so it is never skipped."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI is set but {POSTGRES_ENV} is not: the PostgreSQL tests must run in CI")
    pytest.skip(f'{POSTGRES_ENV} is not set (eval "$(bash .ci/start-postgres)" to run these)')


@contextmanager
def postgres_schema() -> Iterator[str]:
    """Yield a URL whose connections use a fresh, empty schema; drop it afterwards."""
    base = postgres_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        # An alert worker left by a console the test did not close may still be reading the
        # schema: dropping it under a reader can deadlock.
        alerts.stop_all_workers()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(name="database_url", params=BACKENDS)
def database_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'bindwatch.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture(name="sqlite_url")
def sqlite_url_fixture(tmp_path: Path) -> str:
    """Return the URL of a SQLite file in tmp_path (for tests about SQLite's files)."""
    return f"sqlite:///{tmp_path / 'data' / 'bindwatch.db'}"


@pytest.fixture(name="engine")
def engine_fixture(database_url: str) -> Iterator[Engine]:
    """Yield an engine on the migrated database."""
    engine = database.open_database(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(name="key_file")
def key_file_fixture(tmp_path: Path) -> Path:
    """Return where the master key file lives (created by the first open_vault)."""
    return tmp_path / "keys" / "master.key"


@pytest.fixture(name="vault")
def vault_fixture(engine: Engine, key_file: Path) -> Vault:
    """Return the vault of the test database, its key file freshly created."""
    return open_vault(engine, key_file)


def credentials(n: int = 1, marker: str = "") -> Credentials:
    """Return distinct test credentials; `marker` is embedded in the key, secret and passphrase."""
    return Credentials(
        api_key=f"{n:04d}key{marker}{n:08x}abcd",
        api_secret=f"sec-{n}-{marker}-{uuid.uuid5(uuid.NAMESPACE_OID, str(n))}",
        passphrase=f"pp {n} {marker} ☃",
    )


def probe(
    outcome: Outcome = Outcome.OK, *, at: datetime | None = None, **fields: object
) -> ProbeResult:
    """Return a check result with every field filled in."""
    values: dict[str, object] = {
        "checked_at": at or datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        "outcome": outcome,
        "latency_ms": 87,
        "code": None if outcome is Outcome.OK else "400004",
        "message": None if outcome is Outcome.OK else "Invalid KC-API-PASSPHRASE",
        "http_status": 200 if outcome is Outcome.OK else 400,
        "endpoint": None if outcome is Outcome.OK else "/api/v1/user/api-key",
        "permissions": ("General", "Spot", "Futures"),
        "ip_whitelist": "203.**.154,198.**.7",
        "is_master": False,
        "sub_name": "desk-7",
        "uid": "123456789",
        "remark": "bindwatch",
        "api_version": 3,
        "key_created_at": datetime(2025, 12, 1, 8, 30, tzinfo=UTC),
        "clock_offset_ms": -42,
        "seen_ip": "203.0.113.154",
        "rate_limit_remaining": 1980,
        "spot_balances": (
            SpotBalance(
                "trade",
                "USDT",
                Decimal("1234.5678901234"),
                Decimal("1000"),
                Decimal("234.5678901234"),
            ),
            SpotBalance("main", "BTC", Decimal("0.00000001"), Decimal("0.00000001"), Decimal("0")),
        ),
        "futures": {
            "USDT": {"accountEquity": Decimal("99.990000001"), "unrealisedPNL": Decimal("-1.5")}
        },
        "futures_permission_missing": False,
        "vip_level": 2,
    }
    values.update(fields)
    return ProbeResult(**values)  # type: ignore[arg-type]


def encodings(marker: str) -> list[bytes]:
    """Return the marker as it could leak: raw, UTF-16, hex, URL-encoded and base64 forms.

    Base64 depends on alignment, so each base64 form is taken at three offsets, trimmed to the
    characters that do not depend on neighbouring bytes.
    """
    raw = marker.encode()
    found = {
        raw,
        marker.encode("utf-16-le"),
        binascii.hexlify(raw),
        binascii.hexlify(raw).upper(),
        quote(marker, safe="").encode(),
    }
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw + b"\0\0\0")
            start = (pad * 4 + 2) // 3 + 1
            end = ((pad + len(raw)) * 4) // 3 - 1
            found.add(text[start:end])
    return [f for f in found if len(f) >= 8]

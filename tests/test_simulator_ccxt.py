"""Fidelity: ccxt, a third-party KuCoin client, works against the simulator as against KuCoin.

ccxt is pointed at the simulator by overriding `exchange.urls['api']`; one market (BTC/USDT) and
one currency are preset and `options['uta']` is False, so it skips the market-data and
unified-account calls the simulator does not serve (an empty market list would make some ccxt
releases load markets from /api/v3/currencies first).
"""

from __future__ import annotations

import ccxt
import pytest
from simulator_fixtures import ALL_ACCOUNTS, GENERAL_ONLY, MASTER, SUB

from lib.kucoin.sim import SimAccount, Simulator, SimulatorServer

BTC_USDT = {
    "id": "BTC-USDT",
    "symbol": "BTC/USDT",
    "base": "BTC",
    "quote": "USDT",
    "baseId": "BTC",
    "quoteId": "USDT",
    "type": "spot",
    "spot": True,
    "active": True,
    "precision": {"amount": None, "price": None},
    "limits": {"amount": {}, "price": {}, "cost": {}},
}


@pytest.fixture
def simulator() -> Simulator:
    return Simulator(ALL_ACCOUNTS)


@pytest.fixture
def server(simulator: Simulator):
    with SimulatorServer(simulator) as running:
        yield running


@pytest.fixture
def exchange(server):
    """Return a factory of ccxt kucoin clients for an account, pointed at the simulator."""

    def make(account: SimAccount, password: str | None = None):
        client = ccxt.kucoin(
            {
                "apiKey": account.api_key,
                "secret": account.api_secret.reveal(),
                "password": password or account.passphrase.reveal(),
                "enableRateLimit": False,
                "timeout": 5_000,
                "options": {"uta": False},
            }
        )
        for name in ("public", "private"):
            client.urls["api"][name] = server.spot_url
        for name in ("futuresPublic", "futuresPrivate"):
            client.urls["api"][name] = server.futures_url
        client.set_markets([BTC_USDT], {"USDT": {"id": "USDT", "code": "USDT", "precision": None}})
        return client

    return make


def test_ccxt_reads_key_info(exchange):
    response = exchange(MASTER).private_get_user_api_key()
    assert response["code"] == "200000"
    assert response["data"]["apiKey"] == MASTER.api_key
    assert response["data"]["ipWhitelist"] == "127.**.1,203.**.154"
    assert response["data"]["isMaster"] is True


def test_ccxt_fetch_balance_reads_trade_rows_before_migration_status_is_known(exchange):
    balance = exchange(SUB).fetch_balance()
    assert balance["total"] == {"ETH": 1.0}


def test_ccxt_fetch_balance_reads_trade_hf_rows_after_asking_the_migration_status(exchange):
    client = exchange(MASTER)
    client.load_migration_status()  # GET /api/v1/hf/accounts/opened
    assert client.options["hf"] is True
    balance = client.fetch_balance()
    assert balance["BTC"] == {"free": 0.05, "used": 0.05, "total": 0.1}


def test_ccxt_fetch_contract_balance_reads_the_futures_overview(exchange):
    balance = exchange(MASTER).fetch_balance({"type": "contract", "code": "USDT"})
    assert balance["USDT"]["total"] == 394.439280806
    assert balance["USDT"]["free"] == 290.326799096


def test_ccxt_signed_query_with_special_characters_is_accepted(exchange):
    # ccxt signs the raw query and its HTTP library percent-encodes some characters on the wire.
    response = exchange(MASTER).private_get_accounts({"currency": "USDT", "note": "a b!@%+x/é"})
    assert [row["id"] for row in response["data"]] == ["1", "2"]


def test_ccxt_wrong_passphrase_is_authentication_error_400004(exchange):
    with pytest.raises(ccxt.AuthenticationError, match="400004"):
        exchange(MASTER, password="my trading password").private_get_user_api_key()


def test_ccxt_missing_futures_permission_is_400007(exchange):
    with pytest.raises(ccxt.AuthenticationError, match="400007"):
        exchange(GENERAL_ONLY).futuresprivate_get_account_overview({"currency": "USDT"})


def test_ccxt_sees_clock_skew_as_invalid_nonce_400002(simulator, exchange):
    simulator.set_clock_offset(10_000)
    with pytest.raises(ccxt.InvalidNonce, match="400002"):
        exchange(MASTER).private_get_user_api_key()


def test_ccxt_sees_dropped_connection_as_network_error(simulator, exchange):
    simulator.drop_next(1)
    with pytest.raises(ccxt.NetworkError):
        exchange(MASTER).private_get_user_api_key()

"""The client against the simulator over real HTTP: every KuCoin code decoded, quirks handled."""

from __future__ import annotations

from decimal import Decimal

import pytest
from simulator_fixtures import ELSEWHERE, FROZEN, GENERAL_ONLY, MASTER, NO_GENERAL, SUB

from lib.kucoin.auth import Credentials
from lib.kucoin.client import KucoinClient
from lib.kucoin.errors import KucoinAPIError, KucoinBadResponse, KucoinTransportError
from lib.kucoin.probe import probe
from lib.kucoin.probe_result import Outcome
from lib.kucoin.sim import Simulator, SimulatorServer


def creds(account, **changes) -> Credentials:
    """Return our client's credentials for a simulated account."""
    base = {
        "api_key": account.api_key,
        "api_secret": account.api_secret.reveal(),
        "passphrase": account.passphrase.reveal(),
    }
    return Credentials(**{**base, **changes})


@pytest.fixture
def sim():
    return Simulator([MASTER, SUB, GENERAL_ONLY, NO_GENERAL, FROZEN, ELSEWHERE])


@pytest.fixture
def server(sim):
    with SimulatorServer(sim) as running:
        yield running


def client_for(server, credentials=None, **kwargs) -> KucoinClient:
    return KucoinClient(
        credentials, spot_url=server.spot_url, futures_url=server.futures_url, **kwargs
    )


def test_good_key_reads_key_info_with_masked_whitelist(server):
    with client_for(server, creds(MASTER)) as client:
        info = client.api_key_info()
    assert info["apiKey"] == MASTER.api_key
    assert info["ipWhitelist"] == "127.**.1,203.**.154"
    assert info["isMaster"] is True
    assert "Transfer" in info["permission"].split(",")


def test_no_whitelist_means_field_absent(server):
    with client_for(server, creds(GENERAL_ONLY)) as client:
        assert "ipWhitelist" not in client.api_key_info()


def test_accounts_returns_every_row_type_including_trade_hf(server):
    with client_for(server, creds(MASTER)) as client:
        types = {row["type"] for row in client.accounts()}
    assert {"main", "trade", "trade_hf"} <= types


def test_futures_numbers_are_decimal(server):
    with client_for(server, creds(MASTER)) as client:
        overview = client.futures_overview("USDT")
    assert overview["accountEquity"] == Decimal("394.439280806")
    assert all(isinstance(v, Decimal) for k, v in overview.items() if k != "currency")


@pytest.mark.parametrize(
    ("account", "changes", "call", "code", "status"),
    [
        (MASTER, {"api_key": ""}, "api_key_info", "400001", 400),
        (MASTER, {"api_key": "ffffffffffffffffffffffff"}, "api_key_info", "400003", 401),
        (MASTER, {"passphrase": "trading-password"}, "api_key_info", "400004", 401),
        (
            MASTER,
            {"api_secret": "00000000-0000-4000-8000-000000000000"},
            "api_key_info",
            "400005",
            401,
        ),
        (ELSEWHERE, {}, "api_key_info", "400006", 403),
        (NO_GENERAL, {}, "api_key_info", "400007", 403),
        (GENERAL_ONLY, {}, "futures_overview", "400007", 403),
        (FROZEN, {}, "api_key_info", "411100", 403),
        (MASTER, {"key_version": "1"}, "api_key_info", "400009", 400),
    ],
)
def test_each_rejection_is_decoded_with_code_message_and_status(
    server, account, changes, call, code, status
):
    with client_for(server, creds(account, **changes)) as client:
        with pytest.raises(KucoinAPIError) as caught:
            getattr(client, call)()
    error = caught.value
    assert (error.code, error.http_status) == (code, status)
    assert error.message and not error.transient


def test_whitelist_rejection_carries_the_ip_kucoin_saw(sim, server):
    with client_for(server, creds(ELSEWHERE)) as client:
        with pytest.raises(KucoinAPIError) as caught:
            client.api_key_info()
    assert caught.value.client_ip == "127.0.0.1"


def test_key_versions_2_and_3_both_work(server):
    for version in ("2", "3"):
        with client_for(server, creds(MASTER, key_version=version)) as client:
            assert client.api_key_info()["uid"] == MASTER.uid


def test_skewed_clock_gets_400002_until_corrected_by_server_time(sim, server):
    sim.set_clock_offset(9_000)  # KuCoin's clock 9 s ahead of ours
    with client_for(server, creds(MASTER)) as client:
        with pytest.raises(KucoinAPIError) as caught:
            client.api_key_info()
        assert caught.value.code == "400002"
        offset = client.sync_clock()
        assert 8_500 <= offset <= 9_500
        assert client.api_key_info()["uid"] == MASTER.uid


def test_quota_headers_count_down_then_429000():
    sim = Simulator([MASTER], quotas={"Management": 100}, window_ms=60_000)
    with SimulatorServer(sim) as server, client_for(server, creds(MASTER)) as client:
        remaining = []
        for _ in range(5):
            client.api_key_info()  # weight 20
            remaining.append(client.rate_limits["Management"].remaining)
        with pytest.raises(KucoinAPIError) as caught:
            client.api_key_info()
    assert remaining == [80, 60, 40, 20, 0]
    error = caught.value
    assert (error.code, error.http_status) == ("429000", 429)
    assert error.rate_limit.limit == 100 and error.rate_limit.reset_ms > 0
    assert error.transient and not error.overload


def test_overload_is_429000_without_rate_limit_headers(sim, server):
    sim.overload_next(1)
    with client_for(server, creds(MASTER)) as client, pytest.raises(KucoinAPIError) as caught:
        client.api_key_info()
    assert caught.value.code == "429000" and caught.value.overload


def test_cdn_html_page_is_a_clear_error(sim, server):
    sim.cdn_block_next(1)
    with client_for(server, creds(MASTER)) as client:
        with pytest.raises(KucoinBadResponse) as caught:
            client.api_key_info()
    assert caught.value.http_status == 403
    assert "CDN" in str(caught.value)


def test_transient_5xx_is_marked_transient(sim, server):
    sim.fail_next(1, status=503)
    with client_for(server, creds(MASTER)) as client:
        with pytest.raises((KucoinAPIError, KucoinBadResponse)) as caught:
            client.api_key_info()
        assert caught.value.transient
        assert client.api_key_info()["uid"] == MASTER.uid


def test_dropped_connection_is_a_transport_error(sim, server):
    sim.drop_next(1)
    with client_for(server, creds(MASTER)) as client, pytest.raises(KucoinTransportError):
        client.api_key_info()


def test_timeout_is_a_transport_error(sim, server):
    sim.set_latency(1_500)
    with client_for(server, creds(MASTER), timeout=0.3) as client:
        with pytest.raises(KucoinTransportError, match="in time"):
            client.api_key_info()


def test_connection_refused_is_a_transport_error():
    with KucoinClient(creds(MASTER), spot_url="http://127.0.0.1:9") as client:
        with pytest.raises(KucoinTransportError):
            client.server_time()


def test_secrets_never_in_repr_or_exception_text(sim, server):
    canary = "CANARY-5f0c-passphrase"
    with client_for(server, creds(MASTER, passphrase=canary)) as client:
        with pytest.raises(KucoinAPIError) as caught:
            client.api_key_info()
        texts = [repr(client), str(caught.value), repr(caught.value), repr(client.async_client)]
    secret = MASTER.api_secret.reveal()
    assert not any(canary in t or secret in t for t in texts)


def test_a_closed_client_keeps_no_credentials(server):
    with client_for(server, creds(MASTER)) as client:
        assert client.api_key_info()["apiKey"] == MASTER.api_key
    # Whoever still holds the closed client (a traceback, a cache) holds no key through it.
    assert client.async_client.credentials is None


def test_in_process_transport_gives_the_same_answers(sim):
    with KucoinClient(
        creds(MASTER),
        transport=sim.spot_transport(),
        futures_transport=sim.futures_transport(),
        spot_url="http://spot.sim",
        futures_url="http://futures.sim",
    ) as client:
        assert client.api_key_info()["ipWhitelist"] == "127.**.1,203.**.154"


# The probe: what bind, refresh and `check` use.


def test_probe_of_a_good_key_reports_everything(server):
    result = probe(creds(MASTER), spot_url=server.spot_url, futures_url=server.futures_url)
    assert result.outcome is Outcome.OK
    assert result.uid == str(MASTER.uid) and result.is_master is True
    assert result.whitelist_entries == ("127.**.1", "203.**.154")
    assert result.seen_ip == "127.0.0.1"
    assert abs(result.clock_offset_ms) < 1_000
    assert result.futures["USDT"]["availableBalance"] == Decimal("290.326799096")
    assert {b.account_type for b in result.spot_balances} >= {"trade_hf"}
    assert result.rate_limit_remaining is not None
    assert result.key_created_at.year == 2024


def test_futures_refusal_is_a_missing_permission_not_a_failed_key(server):
    # The account needs futures but the key is General-only: the futures API answers 400007.
    result = probe(
        creds(GENERAL_ONLY),
        spot_url=server.spot_url,
        futures_url=server.futures_url,
        want_futures=True,
    )
    assert result.ok
    assert result.futures_permission_missing and not result.futures


def test_futures_host_failure_keeps_the_key_working_with_a_note(server):
    result = probe(creds(SUB), spot_url=server.spot_url, futures_url="http://127.0.0.1:9")
    assert result.ok and not result.futures_permission_missing
    assert "futures overview unavailable" in result.message


def test_probe_of_a_blocked_ip_reports_the_ip_kucoin_saw(sim, server):
    sim.caller_ip = "192.0.2.44"
    result = probe(creds(MASTER), spot_url=server.spot_url, futures_url=server.futures_url)
    assert (result.outcome, result.code) == (Outcome.REJECTED, "400006")
    assert result.seen_ip == "192.0.2.44"


def test_probe_of_unreachable_kucoin_is_transient():
    result = probe(creds(MASTER), spot_url="http://127.0.0.1:9", futures_url="http://127.0.0.1:9")
    assert result.outcome is Outcome.UNREACHABLE and result.code is None

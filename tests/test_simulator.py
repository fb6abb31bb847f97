"""The KuCoin simulator over real HTTP: what KuCoin answers, refuses, limits and how it fails."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from simulator_fixtures import (
    ALL_ACCOUNTS,
    ELSEWHERE,
    FROZEN,
    GENERAL_ONLY,
    MASTER,
    NO_GENERAL,
    SUB,
    hmac_b64,
    now_ms,
    signed_headers,
)

from lib.kucoin.sim import (
    SAMPLE_ACCOUNTS,
    AccountsError,
    Faults,
    SimAccount,
    Simulator,
    SimulatorServer,
    accounts_from_json,
    load_accounts,
    mask_ip,
)

ROOT = Path(__file__).resolve().parents[1]
KEY_INFO = "/api/v1/user/api-key"
ACCOUNTS = "/api/v1/accounts"
USER_INFO = "/api/v2/user-info"
OVERVIEW = "/api/v1/account-overview"


@pytest.fixture
def simulator() -> Simulator:
    return Simulator(ALL_ACCOUNTS)


@pytest.fixture
def server(simulator: Simulator):
    with SimulatorServer(simulator) as running:
        yield running


@pytest.fixture
def http():
    with httpx.Client(timeout=5) as client:
        yield client


def get(http: httpx.Client, base: str, account: SimAccount, endpoint: str, **sign_options):
    """GET a signed endpoint (path plus raw query) and return the response."""
    return http.get(
        base + endpoint, headers=signed_headers(account, "GET", endpoint, **sign_options)
    )


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    """Return (HTTP status, code, msg) of an error answer."""
    body = response.json()
    return response.status_code, body["code"], body["msg"]


def rate_headers(response: httpx.Response) -> tuple[int, int, int]:
    """Return (limit, remaining, reset) from the gw-ratelimit-* headers."""
    return tuple(
        int(response.headers[f"gw-ratelimit-{name}"]) for name in ("limit", "remaining", "reset")
    )


# Public endpoints and routing.


def test_timestamp_on_both_hosts_is_the_simulators_clock_in_ms(server, http):
    for base in (server.spot_url, server.futures_url):
        response = http.get(base + "/api/v1/timestamp")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["code"] == "200000"
        assert abs(body["data"] - now_ms()) < 2_000


def test_my_ip_returns_the_callers_address(server, http):
    assert http.get(server.spot_url + "/api/v1/my-ip").json() == {
        "code": "200000",
        "data": "127.0.0.1",
    }


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("spot", "/api/v1/nope"),
        ("spot", OVERVIEW + "?currency=USDT"),  # futures path on the spot host (reference §2.1)
        ("futures", KEY_INFO),
        ("futures", "/api/v1/my-ip"),
    ],
)
def test_unknown_path_or_other_hosts_path_is_kucoins_404(server, http, host, path):
    base = server.spot_url if host == "spot" else server.futures_url
    response = http.get(base + path, headers=signed_headers(MASTER, "GET", path))
    assert response.status_code == 404
    assert response.json() == {"code": "404", "msg": "Not Found", "retry": False, "success": False}


# Successful private reads.


@pytest.mark.parametrize("version", ["2", "3"])
def test_key_info_accepts_both_key_versions_and_masks_the_whitelist(server, http, version):
    response = get(http, server.spot_url, MASTER, KEY_INFO, version=version)
    assert response.status_code == 200
    assert response.json() == {
        "code": "200000",
        "data": {
            "remark": "treasury",
            "apiKey": MASTER.api_key,
            "apiVersion": 3,
            "permission": "General,Spot,Margin,Futures,Earn,InnerTransfer,Transfer",
            "ipWhitelist": "127.**.1,203.**.154",
            "createdAt": 1728443843000,
            "uid": 165111215,
            "isMaster": True,
        },
    }


def test_key_info_of_a_sub_account_has_sub_name_and_no_whitelist_field(server, http):
    data = get(http, server.spot_url, SUB, KEY_INFO).json()["data"]
    assert data["isMaster"] is False
    assert data["subName"] == "mmbot01"
    assert data["permission"] == "General,Futures"
    assert "ipWhitelist" not in data


def test_master_key_info_has_no_sub_name(server, http):
    assert "subName" not in get(http, server.spot_url, GENERAL_ONLY, KEY_INFO).json()["data"]


def test_ip_masks_keep_first_and_last_part():
    assert mask_ip("203.0.113.154") == "203.**.154"
    assert mask_ip("2001:db8::8a2e:370:7334") == "2001:**:7334"
    assert mask_ip("::1") == "0:**:1"


def test_accounts_returns_every_row_type_including_trade_hf(server, http):
    rows = get(http, server.spot_url, MASTER, ACCOUNTS).json()["data"]
    assert [row["type"] for row in rows] == ["main", "trade", "trade_hf"]
    assert rows[2] == {
        "id": "3",
        "currency": "BTC",
        "type": "trade_hf",
        "balance": "0.1",
        "available": "0.05",
        "holds": "0.05",
    }
    assert all(isinstance(value, str) for row in rows for value in row.values())


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("?currency=USDT", ["1", "2"]),
        ("?type=trade_hf", ["3"]),
        ("?currency=USDT&type=trade", ["2"]),
        ("?currency=ETH", []),
    ],
)
def test_accounts_filters_by_currency_and_type(server, http, query, ids):
    rows = get(http, server.spot_url, MASTER, ACCOUNTS + query).json()["data"]
    assert [row["id"] for row in rows] == ids


def test_user_info_returns_the_account_summary(server, http):
    data = get(http, server.spot_url, MASTER, USER_INFO).json()["data"]
    assert data["level"] == 0
    assert data["maxSubQuantity"] == 5


def test_futures_overview_returns_numbers_and_defaults_to_xbt(server, http):
    usdt = get(http, server.futures_url, MASTER, OVERVIEW + "?currency=USDT").json()["data"]
    assert usdt["accountEquity"] == 394.439280806
    assert usdt["currency"] == "USDT"
    assert usdt["frozenFunds"] == 0
    xbt = get(http, server.futures_url, MASTER, OVERVIEW).json()["data"]
    assert xbt["currency"] == "XBT"
    assert all(value == 0 for name, value in xbt.items() if name != "currency")


def test_hf_accounts_opened_says_whether_the_account_has_trade_hf_rows(server, http):
    opened = "/api/v1/hf/accounts/opened"
    assert get(http, server.spot_url, MASTER, opened).json()["data"] is True
    assert get(http, server.spot_url, SUB, opened).json()["data"] is False


# Refusals: code, HTTP status and message.


@pytest.mark.parametrize(
    "header", ["KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE"]
)
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_missing_or_empty_auth_header_is_400001(server, http, header, how):
    headers = signed_headers(MASTER, "GET", KEY_INFO)
    if how == "missing":
        del headers[header]
    else:
        headers[header] = ""
    status, code, msg = error_of(http.get(server.spot_url + KEY_INFO, headers=headers))
    assert (status, code) == (400, "400001")
    assert "KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE" in msg


def test_non_numeric_timestamp_is_400001_not_400002(server, http):
    response = get(http, server.spot_url, MASTER, KEY_INFO, timestamp="2024-01-01T00:00:00Z")
    assert error_of(response)[:2] == (400, "400001")


@pytest.mark.parametrize("version", ["1", "4", "v2", ""])
def test_key_version_other_than_2_or_3_is_400009(server, http, version):
    response = get(http, server.spot_url, MASTER, KEY_INFO, version=version)
    assert error_of(response) == (400, "400009", "Invalid KC-API-KEY-VERSION.")


def test_missing_key_version_header_is_400009(server, http):
    headers = signed_headers(MASTER, "GET", KEY_INFO)
    del headers["KC-API-KEY-VERSION"]
    response = http.get(server.spot_url + KEY_INFO, headers=headers)
    assert error_of(response)[:2] == (400, "400009")


@pytest.mark.parametrize("skew_ms", [-6_000, 5_500])
def test_timestamp_more_than_5_s_off_is_400002(server, http, skew_ms):
    response = get(http, server.spot_url, MASTER, KEY_INFO, timestamp=now_ms() + skew_ms)
    assert error_of(response) == (400, "400002", "Invalid KC-API-TIMESTAMP.")


def test_timestamp_4_s_off_is_accepted(server, http):
    response = get(http, server.spot_url, MASTER, KEY_INFO, timestamp=now_ms() - 4_000)
    assert response.status_code == 200


def test_unknown_key_is_400003(server, http):
    stranger = SimAccount(api_key="0" * 24, api_secret="s", passphrase="p", uid=1)
    response = get(http, server.spot_url, stranger, KEY_INFO)
    assert error_of(response) == (401, "400003", "KC-API-KEY does not exist.")


def test_wrong_passphrase_is_400004(server, http):
    response = get(http, server.spot_url, MASTER, KEY_INFO, passphrase="my trading password")
    assert error_of(response) == (401, "400004", "Invalid KC-API-PASSPHRASE.")


def test_plaintext_passphrase_is_400004(server, http):
    headers = signed_headers(MASTER, "GET", KEY_INFO)
    headers["KC-API-PASSPHRASE"] = MASTER.passphrase.reveal()
    response = http.get(server.spot_url + KEY_INFO, headers=headers)
    assert error_of(response)[:2] == (401, "400004")


def test_wrong_secret_is_400005(server, http):
    headers = signed_headers(MASTER, "GET", KEY_INFO)
    headers["KC-API-SIGN"] = hmac_b64("not-the-secret", f"{now_ms()}GET{KEY_INFO}".encode())
    response = http.get(server.spot_url + KEY_INFO, headers=headers)
    assert error_of(response) == (401, "400005", "Invalid KC-API-SIGN.")


def test_signature_must_cover_the_query_as_sent(server, http):
    headers = signed_headers(MASTER, "GET", ACCOUNTS)  # signed without the query
    response = http.get(server.spot_url + ACCOUNTS + "?currency=USDT", headers=headers)
    assert error_of(response)[:2] == (401, "400005")


def test_signature_must_cover_the_timestamp_header(server, http):
    stamp = now_ms()
    headers = signed_headers(MASTER, "GET", KEY_INFO, timestamp=stamp)
    headers["KC-API-TIMESTAMP"] = str(stamp + 1)
    assert error_of(http.get(server.spot_url + KEY_INFO, headers=headers))[:2] == (401, "400005")


def test_query_signed_unencoded_but_sent_encoded_is_accepted(server, http):
    # The official SDK's way: urlencode on the wire, raw key=value in the prehash (§1.2).
    wire = ACCOUNTS + "?currency=USDT&note=a+b%21%40%2311"
    headers = signed_headers(MASTER, "GET", ACCOUNTS + "?currency=USDT&note=a b!@#11")
    response = http.get(server.spot_url + wire, headers=headers)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["data"]] == ["1", "2"]


def test_query_signed_exactly_as_sent_is_accepted(server, http):
    wire = ACCOUNTS + "?currency=USDT&note=a+b%21%40"
    response = http.get(server.spot_url + wire, headers=signed_headers(MASTER, "GET", wire))
    assert response.status_code == 200


def test_body_bytes_are_part_of_the_signature(server, http):
    body = b'{"currency":"BTC"}'
    signed = signed_headers(GENERAL_ONLY, "GET", KEY_INFO, body)
    assert http.request("GET", server.spot_url + KEY_INFO, headers=signed, content=body).is_success
    unsigned = signed_headers(GENERAL_ONLY, "GET", KEY_INFO)
    response = http.request("GET", server.spot_url + KEY_INFO, headers=unsigned, content=body)
    assert error_of(response)[:2] == (401, "400005")


def test_caller_outside_the_whitelist_is_400006_naming_the_ip(server, http):
    response = get(http, server.spot_url, ELSEWHERE, KEY_INFO)
    assert error_of(response) == (
        403,
        "400006",
        "Invalid request IP, the current client IP is: 127.0.0.1.",
    )


def test_configured_caller_ip_is_checked_against_the_full_whitelist(http):
    simulator = Simulator(ALL_ACCOUNTS, caller_ip="198.51.100.7")
    with SimulatorServer(simulator) as server:
        assert get(http, server.spot_url, ELSEWHERE, KEY_INFO).status_code == 200
        refused = get(http, server.spot_url, MASTER, KEY_INFO)
        assert error_of(refused)[:2] == (403, "400006")
        assert "198.51.100.7" in error_of(refused)[2]
        assert http.get(server.spot_url + "/api/v1/my-ip").json()["data"] == "198.51.100.7"


def test_frozen_account_is_411100(server, http):
    assert error_of(get(http, server.spot_url, FROZEN, KEY_INFO)) == (
        403,
        "411100",
        "User are frozen",
    )


@pytest.mark.parametrize(
    ("account", "host", "endpoint"),
    [
        (NO_GENERAL, "spot", KEY_INFO),
        (NO_GENERAL, "spot", ACCOUNTS),
        (NO_GENERAL, "spot", USER_INFO),
        (GENERAL_ONLY, "futures", OVERVIEW + "?currency=USDT"),
    ],
)
def test_missing_permission_is_400007(server, http, account, host, endpoint):
    base = server.spot_url if host == "spot" else server.futures_url
    assert error_of(get(http, base, account, endpoint)) == (
        403,
        "400007",
        "Access denied, requires more permission.",
    )


def test_stale_timestamp_is_refused_before_the_key_is_looked_up(server, http):
    stranger = SimAccount(api_key="f" * 24, api_secret="s", passphrase="p", uid=1)
    assert error_of(get(http, server.spot_url, stranger, KEY_INFO, timestamp=1))[1] == "400002"


def test_key_version_is_checked_before_the_timestamp(server, http):
    response = get(http, server.spot_url, MASTER, KEY_INFO, version="1", timestamp=1)
    assert error_of(response)[1] == "400009"


def test_signature_is_checked_before_the_passphrase(server, http):
    headers = signed_headers(MASTER, "GET", KEY_INFO, passphrase="wrong")
    headers["KC-API-SIGN"] = "bm90IGEgc2lnbmF0dXJl"
    assert error_of(http.get(server.spot_url + KEY_INFO, headers=headers))[1] == "400005"


def test_wrong_secret_reads_as_400005_not_400004(server, http):
    headers = signed_headers(MASTER, "GET", KEY_INFO, secret="00000000-0000-4000-8000-0000000000")
    assert error_of(http.get(server.spot_url + KEY_INFO, headers=headers))[1] == "400005"


def test_signature_is_checked_before_the_whitelist(server, http):
    headers = signed_headers(ELSEWHERE, "GET", KEY_INFO)
    headers["KC-API-SIGN"] = "bm90IGEgc2lnbmF0dXJl"
    assert error_of(http.get(server.spot_url + KEY_INFO, headers=headers))[1] == "400005"


def test_whitelist_is_checked_before_frozen(simulator, server, http):
    simulator.update_account(ELSEWHERE.api_key, frozen=True)
    assert error_of(get(http, server.spot_url, ELSEWHERE, KEY_INFO))[1] == "400006"


def test_rate_limit_is_checked_before_the_whitelist(http):
    simulator = Simulator([ELSEWHERE], quotas={"Management": 20})
    with SimulatorServer(simulator) as server:
        assert error_of(get(http, server.spot_url, ELSEWHERE, KEY_INFO))[1] == "400006"
        assert error_of(get(http, server.spot_url, ELSEWHERE, KEY_INFO))[1] == "429000"


def test_frozen_is_reported_before_missing_permission(http):
    simulator = Simulator([NO_GENERAL])
    simulator.update_account(NO_GENERAL.api_key, frozen=True)
    with SimulatorServer(simulator) as server:
        assert error_of(get(http, server.spot_url, NO_GENERAL, KEY_INFO))[1] == "411100"


def test_removed_key_is_400003(simulator, server, http):
    simulator.remove_account(GENERAL_ONLY.api_key)
    assert error_of(get(http, server.spot_url, GENERAL_ONLY, KEY_INFO))[1] == "400003"


# Rate limits.


def test_rate_limit_headers_count_down_then_429000_then_reset_after_the_window(http):
    simulator = Simulator([MASTER, SUB], quotas={"Management": 50}, window_ms=600)
    with SimulatorServer(simulator) as server:
        first = get(http, server.spot_url, MASTER, KEY_INFO)  # weight 20
        assert rate_headers(first)[:2] == (50, 30)
        time.sleep(0.02)
        second = get(http, server.spot_url, MASTER, KEY_INFO)
        assert rate_headers(second)[:2] == (50, 10)
        assert 0 < rate_headers(second)[2] < rate_headers(first)[2] <= 600
        third = get(http, server.spot_url, MASTER, KEY_INFO)
        assert error_of(third) == (429, "429000", "Too Many Requests")
        assert rate_headers(third)[:2] == (50, 10)
        # A lighter call still fits in what is left (accounts weighs 5).
        assert rate_headers(get(http, server.spot_url, MASTER, ACCOUNTS))[:2] == (50, 5)
        # Another UID has its own quota.
        assert get(http, server.spot_url, SUB, KEY_INFO).status_code == 200
        time.sleep(rate_headers(third)[2] / 1000 + 0.05)
        again = get(http, server.spot_url, MASTER, KEY_INFO)
        assert again.status_code == 200
        assert rate_headers(again)[:2] == (50, 30)


def test_keys_of_the_same_uid_share_a_quota(http):
    sibling = SimAccount(
        api_key="66e3f4a5b6c7d8e9f0a1b2c3", api_secret="s2", passphrase="p2", uid=MASTER.uid
    )
    simulator = Simulator([MASTER, sibling], quotas={"Management": 40})
    with SimulatorServer(simulator) as server:
        assert get(http, server.spot_url, MASTER, KEY_INFO).status_code == 200
        assert get(http, server.spot_url, sibling, KEY_INFO).status_code == 200
        assert error_of(get(http, server.spot_url, sibling, KEY_INFO))[1] == "429000"


def test_public_pool_is_per_ip(http):
    simulator = Simulator([], quotas={"Public": 6})
    with SimulatorServer(simulator) as server:
        remaining = [
            rate_headers(http.get(server.spot_url + "/api/v1/timestamp"))[1] for _ in range(2)
        ]
        assert remaining == [3, 0]
        refused = http.get(server.spot_url + "/api/v1/timestamp")
        assert error_of(refused)[:2] == (429, "429000")
        simulator.caller_ip = "198.51.100.7"  # another IP, another bucket
        assert http.get(server.spot_url + "/api/v1/timestamp").status_code == 200


def test_refused_requests_are_not_charged(server, http):
    get(http, server.spot_url, MASTER, KEY_INFO, passphrase="wrong")
    assert rate_headers(get(http, server.spot_url, MASTER, KEY_INFO))[1] == 2000 - 20


def test_every_gateway_answer_carries_rate_limit_headers(server, http):
    for response in (
        http.get(server.spot_url + "/api/v1/timestamp"),
        http.get(server.spot_url + "/nope"),
        get(http, server.spot_url, MASTER, KEY_INFO, passphrase="wrong"),
        get(http, server.spot_url, FROZEN, KEY_INFO),
        get(http, server.futures_url, MASTER, OVERVIEW),
    ):
        assert rate_headers(response)[0] == 2000


# Injected faults.


def test_overload_is_429000_without_rate_limit_headers(simulator, server, http):
    simulator.overload_next(1)
    response = get(http, server.spot_url, MASTER, KEY_INFO)
    assert error_of(response) == (429, "429000", "Too Many Requests")
    assert not any(name.startswith("gw-ratelimit") for name in response.headers)
    assert get(http, server.spot_url, MASTER, KEY_INFO).status_code == 200


def test_transient_500_and_503_then_recovery(simulator, server, http):
    simulator.fail_next(1)
    assert error_of(http.get(server.spot_url + "/api/v1/timestamp"))[:2] == (500, "500000")
    simulator.fail_next(2, status=503)
    for _ in range(2):
        assert http.get(server.futures_url + "/api/v1/timestamp").status_code == 503
    assert http.get(server.spot_url + "/api/v1/timestamp").status_code == 200


def test_cdn_page_is_html_error_1015(simulator, server, http):
    simulator.cdn_block_next(1)
    response = get(http, server.spot_url, MASTER, KEY_INFO)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Error" in response.text and "1015" in response.text
    assert "You are being rate limited" in response.text
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_dropped_connection_sends_no_response(simulator, server, http):
    simulator.drop_next(1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(server.spot_url + "/api/v1/timestamp")
    assert http.get(server.spot_url + "/api/v1/timestamp").status_code == 200


def test_latency_delays_the_answer(simulator, server, http):
    simulator.set_latency(300)
    started = time.monotonic()
    assert get(http, server.spot_url, MASTER, KEY_INFO).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_clock_offset_makes_a_locally_timed_request_400002(simulator, server, http):
    simulator.set_clock_offset(10_000)
    server_time = http.get(server.spot_url + "/api/v1/timestamp").json()["data"]
    assert 9_000 < server_time - now_ms() < 11_000
    assert error_of(get(http, server.spot_url, MASTER, KEY_INFO))[1] == "400002"
    # Signing with the server's time (what a client should do) is accepted.
    assert get(http, server.spot_url, MASTER, KEY_INFO, timestamp=server_time).status_code == 200


def test_account_faults_hit_only_that_accounts_requests(simulator, server, http):
    simulator.fail_next(1, status=503, api_key=SUB.api_key)
    simulator.set_clock_offset(-8_000, api_key=GENERAL_ONLY.api_key)
    assert get(http, server.spot_url, MASTER, KEY_INFO).status_code == 200
    assert get(http, server.spot_url, SUB, KEY_INFO).status_code == 503
    assert get(http, server.spot_url, SUB, KEY_INFO).status_code == 200
    assert error_of(get(http, server.spot_url, GENERAL_ONLY, KEY_INFO))[1] == "400002"
    simulator.clear_faults(GENERAL_ONLY.api_key)
    assert get(http, server.spot_url, GENERAL_ONLY, KEY_INFO).status_code == 200


def test_negative_count_fails_every_request_until_cleared(simulator, server, http):
    simulator.overload_next(-1)
    for _ in range(3):
        assert http.get(server.spot_url + "/api/v1/timestamp").status_code == 429
    simulator.clear_faults()
    assert http.get(server.spot_url + "/api/v1/timestamp").status_code == 200


# In-process transports.


def test_spot_transport_serves_a_sync_client_without_a_server():
    simulator = Simulator([MASTER])
    with httpx.Client(transport=simulator.spot_transport(), base_url="https://api.kucoin.com") as c:
        response = c.get(KEY_INFO, headers=signed_headers(MASTER, "GET", KEY_INFO))
        assert response.json()["data"]["uid"] == MASTER.uid
        assert c.get(OVERVIEW).status_code == 404
        simulator.drop_next(1)
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/api/v1/timestamp")


def test_futures_transport_serves_an_async_client_and_latency_does_not_block_the_loop():
    simulator = Simulator([MASTER], faults=Faults(latency_ms=300))
    endpoint = OVERVIEW + "?currency=USDT"

    async def two_calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=simulator.futures_transport(), base_url="https://api-futures.kucoin.com"
        ) as client:
            return await asyncio.gather(
                *(
                    client.get(endpoint, headers=signed_headers(MASTER, "GET", endpoint))
                    for _ in range(2)
                )
            )

    started = time.monotonic()
    responses = asyncio.run(two_calls())
    assert time.monotonic() - started < 0.55
    assert [r.json()["data"]["currency"] for r in responses] == ["USDT", "USDT"]


def test_transport_caller_ip_is_checked_against_the_whitelist():
    simulator = Simulator([ELSEWHERE])
    transport = simulator.spot_transport(caller_ip="2001:db8::7334")
    with httpx.Client(transport=transport, base_url="https://api.kucoin.com") as client:
        response = client.get(KEY_INFO, headers=signed_headers(ELSEWHERE, "GET", KEY_INFO))
        assert response.json()["data"]["ipWhitelist"] == "198.**.7,2001:**:7334"


# Accounts: file, validation, secrets.


def test_sample_accounts_file_loads_with_the_promised_kinds_of_account():
    accounts = load_accounts(SAMPLE_ACCOUNTS)
    assert any(a.is_master and a.ip_whitelist and "Transfer" in a.permissions for a in accounts)
    assert any(not a.is_master and a.sub_name for a in accounts)
    assert any(a.permissions == ("General",) for a in accounts)
    assert any(a.frozen for a in accounts)
    for account in accounts:
        assert re.fullmatch(r"[0-9a-f]{24}", account.api_key)
        assert re.fullmatch(
            r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", account.api_secret.reveal()
        )


def test_accounts_file_takes_per_account_faults(tmp_path):
    path = tmp_path / "accounts.json"
    entry = {"api_key": "a1", "api_secret": "s", "passphrase": "p", "uid": 7}
    entry["faults"] = {"latency_ms": 50, "drop_next": 1}
    path.write_text(json.dumps({"accounts": [entry]}))
    (account,) = Simulator.from_file(path).accounts
    assert account.faults == Faults(latency_ms=50, drop_next=1)


VALID = {"api_key": "a1", "api_secret": "s", "passphrase": "p", "uid": 7}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({**VALID, "uid": "seven"}, "accounts[0] (api_key 'a1'): field 'uid': must be a positive"),
        ({k: v for k, v in VALID.items() if k != "api_secret"}, "field 'api_secret': required"),
        ({**VALID, "passphrase": ""}, "field 'passphrase': must be a non-empty string"),
        ({**VALID, "permissions": ["General", "Withdraw"]}, "unknown permission 'Withdraw'"),
        ({**VALID, "ip_whitelist": ["10.0.0.0/8"]}, "'10.0.0.0/8' is not an IP address"),
        ({**VALID, "ip_whitelist": [f"10.0.0.{i}" for i in range(21)]}, "at most 20 IPs"),
        ({**VALID, "is_master": False}, "field 'sub_name': must be a non-empty string"),
        ({**VALID, "sub_name": "x"}, "a master account has no sub_name"),
        ({**VALID, "permision": ["General"]}, "unknown field 'permision'"),
        ({**VALID, "spot": [{"currency": "USDT", "type": "trade", "balance": 12.5}]},
         "field 'spot[0].balance': must be a decimal string"),
        ({**VALID, "spot": [{"currency": "USDT", "type": "spot"}]}, "field 'spot[0].type': 'spot'"),
        ({**VALID, "futures": {"USDT": {"equity": 1}}}, "field 'futures.USDT': unknown field"),
        ({**VALID, "futures": {"USDT": {"accountEquity": "1"}}}, ".accountEquity': must be"),
        ({**VALID, "frozen": "yes"}, "field 'frozen': must be true or false"),
        ({**VALID, "faults": {"fail_status": 404}}, "field 'faults.fail_status'"),
        ({**VALID, "faults": {"latency": 5}}, "field 'faults': unknown key 'latency'"),
        ({**VALID, "user_info": {"level": -1}}, "field 'user_info.level'"),
    ],
)  # fmt: skip
def test_invalid_account_is_reported_with_account_and_field(entry, expected):
    with pytest.raises(AccountsError) as caught:
        accounts_from_json({"accounts": [entry]})
    assert expected in str(caught.value)


def test_duplicate_key_names_both_accounts():
    with pytest.raises(AccountsError, match=r"accounts\[1\].*same key as accounts\[0\]"):
        accounts_from_json({"accounts": [VALID, VALID]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", 'must be a JSON object {"accounts": [...]}'),
        ('{"accounts": [], "extra": 1}', "unknown top-level key 'extra'"),
    ],
)
def test_unreadable_accounts_file_is_reported(tmp_path, text, expected):
    path = tmp_path / "accounts.json"
    path.write_text(text)
    with pytest.raises(AccountsError, match=re.escape(expected)):
        load_accounts(path)


def test_account_repr_and_errors_never_show_secrets():
    shown = repr(MASTER) + repr(Simulator([MASTER])) + str(MASTER)
    assert MASTER.api_secret.reveal() not in shown
    assert MASTER.passphrase.reveal() not in shown
    with pytest.raises(AccountsError) as caught:
        accounts_from_json({"accounts": [{**VALID, "api_secret": "TOPSECRET", "uid": 0}]})
    assert "TOPSECRET" not in str(caught.value)


# Command line.


def test_cli_starts_serves_and_stops_on_ctrl_c():
    process = subprocess.Popen(
        [sys.executable, "-m", "lib", "simulate", "--port", "0", "--latency-ms", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("Ctrl-C"):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line)
        urls = dict(re.findall(r"^(spot|futures)\s+(http://\S+)$", "".join(lines), re.M))
        sample = load_accounts(SAMPLE_ACCOUNTS)[0]
        with httpx.Client(timeout=5) as http:
            assert http.get(urls["futures"] + "/api/v1/timestamp").status_code == 200
            assert get(http, urls["spot"], sample, KEY_INFO).json()["data"]["uid"] == sample.uid
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_rejects_a_bad_accounts_file_with_exit_2(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"accounts": [{**VALID, "uid": -3}]}))
    result = subprocess.run(
        [sys.executable, "-m", "lib", "simulate", "--accounts", str(path), "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "accounts[0] (api_key 'a1'): field 'uid'" in result.stderr
    assert "Traceback" not in result.stderr


# The CDN's limit per IP, in front of the gateway.


def test_past_the_ip_limit_every_endpoint_gets_the_cdn_page_until_the_block_ends(http):
    clock = [1_000.0]
    simulator = Simulator(
        ALL_ACCOUNTS, ip_limit=3, ip_window_s=10, ip_block_s=30, clock=lambda: clock[0]
    )
    with SimulatorServer(simulator) as running:
        statuses = [http.get(running.spot_url + "/api/v1/timestamp").status_code for _ in range(3)]
        refused = get(http, running.spot_url, MASTER, "/api/v1/user/api-key")
        clock[0] += 29  # still blocked, though the 10 s window has passed
        still = http.get(running.futures_url + "/api/v1/timestamp")
        clock[0] += 2
        again = http.get(running.spot_url + "/api/v1/timestamp")
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert "1015" in refused.text and refused.headers["content-type"].startswith("text/html")
    assert still.status_code == 429
    assert again.status_code == 200


def test_the_ip_limit_counts_requests_in_any_window_of_its_length(http):
    clock = [1_000.0]
    simulator = Simulator(ALL_ACCOUNTS, ip_limit=2, ip_window_s=10, clock=lambda: clock[0])
    with SimulatorServer(simulator) as running:
        first = http.get(running.spot_url + "/api/v1/timestamp")
        clock[0] += 9
        second = http.get(running.spot_url + "/api/v1/timestamp")
        clock[0] += 1.5  # the first has left the window, the second has not
        third = http.get(running.spot_url + "/api/v1/timestamp")
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]

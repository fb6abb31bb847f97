"""Known-answer tests for KuCoin signing: every vector in the reference (kucoin-api.md §1.6)."""

import pytest

from lib.kucoin.auth import Credentials, auth_headers, hmac_b64, prehash, sign, sign_passphrase
from lib.kucoin.client import raw_query
from lib.secret import Secret

DOC_SECRET = Secret("f03a5284-5c39-4aaa-9b20-dea10bdcf8e3")


def test_official_docs_post_vector_signs_compact_json_body():
    signature = sign(
        DOC_SECRET, "1547015186532", "POST", "/api/v1/deposit-addresses", '{"currency":"BTC"}'
    )
    assert signature == "7QP/oM0ykidMdrfNEUmng8eZjg/ZvPafjIqmxiVfYu4="


def test_official_sdk_unit_vector():
    assert hmac_b64("test_api_secret", "test_plain") == (
        "jie/gxS38wLFFaBwl/cAzFbAzlI8MIny96jSXrB+iP4="
    )


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("/api/v1/user/api-key", "rYe97V3bzNX6r1suSXIF3mb3FLt49N3Mj0j705OQH2Q="),
        (
            "/api/v1/accounts?currency=USDT&type=trade",
            "ieK4Aadchyf0exslE5RJmZswnHe9P6sz88shq4irEM4=",
        ),
        ("/api/v1/account-overview?currency=USDT", "K0+pMwDQ8o4lb8lwVRpMl/NIVlQUTQfZdBX7LjMqQmc="),
        ("/api/v1/timestamp", "4zE+2AytZGHQxkCUtiUUKWe0ejL3Ju7i50pW0vAjKGw="),
    ],
)
def test_get_vectors_sign_path_with_raw_query(endpoint, expected):
    assert sign(DOC_SECRET, "1700000000000", "get", endpoint) == expected


@pytest.mark.parametrize(
    ("secret", "passphrase", "expected"),
    [
        (DOC_SECRET, "my-passphrase", "sVNmif2caUE5SCRJCgYlwsc6lQaT8d/P6TZ8yPqSYoU="),
        (DOC_SECRET, "Ab12345678", "wPXXd6BkDiC5VBrvio/GMSUMb0BC6k9O8smpWZRpPqo="),
        (
            Secret("test_api_secret"),
            "test_passphrase",
            "Ikr9KjwgA4urCb5Az1TNKgQELW10z84iOq+wsZsRRz0=",
        ),
    ],
)
def test_passphrase_vectors_are_hmac_not_plaintext(secret, passphrase, expected):
    assert sign_passphrase(secret, Secret(passphrase)) == expected


def test_headers_use_one_timestamp_in_prehash_and_header():
    creds = Credentials("5c2db93503aa674c74a31734", DOC_SECRET, Secret("my-passphrase"))
    headers = auth_headers(creds, 1700000000000, "GET", "/api/v1/user/api-key")
    assert headers["KC-API-TIMESTAMP"] == "1700000000000"
    assert headers["KC-API-SIGN"] == "rYe97V3bzNX6r1suSXIF3mb3FLt49N3Mj0j705OQH2Q="
    assert headers["KC-API-PASSPHRASE"] == "sVNmif2caUE5SCRJCgYlwsc6lQaT8d/P6TZ8yPqSYoU="
    assert headers["KC-API-KEY-VERSION"] == "3"
    assert all(isinstance(v, str) for v in headers.values())


def test_key_version_header_is_configurable_and_a_string():
    creds = Credentials("5c2db93503aa674c74a31734", DOC_SECRET, Secret("p"), key_version="2")
    assert auth_headers(creds, 1, "GET", "/x")["KC-API-KEY-VERSION"] == "2"


def test_query_is_signed_unencoded_in_send_order():
    assert raw_query({"apiKey": "67b3", "subName": "test", "passphrase": "abc!@#11"}) == (
        "apiKey=67b3&subName=test&passphrase=abc!@#11"
    )
    assert prehash("1", "get", "/p?a=1") == "1GET/p?a=1"


def test_credentials_repr_never_shows_secret_or_passphrase():
    creds = Credentials("5c2db93503aa674c74a31734", "SECRET-CANARY-1", "PASS-CANARY-2")
    for text in (repr(creds), str(creds), f"{creds}", repr(creds.api_secret)):
        assert "CANARY" not in text
    assert "1734" in repr(creds)

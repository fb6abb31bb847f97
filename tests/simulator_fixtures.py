"""Accounts and request signing for the simulator's tests, written from the reference (§1).

Signing is done here with hmac/base64 directly, not with our client, so the simulator is checked
against KuCoin's rules rather than against our own reading of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from lib.kucoin.sim import SimAccount


def hmac_b64(secret: str, message: bytes) -> str:
    """Return base64(HMAC-SHA256(secret, message))."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def now_ms() -> int:
    """Return this machine's time in ms."""
    return time.time_ns() // 1_000_000


def signed_headers(
    account: SimAccount,
    method: str,
    endpoint: str,
    body: bytes = b"",
    *,
    timestamp: int | str | None = None,
    version: str = "2",
    passphrase: str | None = None,
    secret: str | None = None,
) -> dict[str, str]:
    """Return the KC-API-* headers KuCoin expects for one request (reference §1.1–§1.3)."""
    secret = secret if secret is not None else account.api_secret.reveal()
    passphrase = passphrase if passphrase is not None else account.passphrase.reveal()
    stamp = str(now_ms() if timestamp is None else timestamp)
    return {
        "KC-API-KEY": account.api_key,
        "KC-API-SIGN": hmac_b64(secret, (stamp + method + endpoint).encode() + body),
        "KC-API-TIMESTAMP": stamp,
        "KC-API-PASSPHRASE": hmac_b64(secret, passphrase.encode()),
        "KC-API-KEY-VERSION": version,
        "Content-Type": "application/json",
    }


MASTER = SimAccount(
    api_key="6705f5c311545b000157d3eb",
    api_secret="0b6e4b1c-6a4e-4e55-9d0b-2f2b6f5a9c11",
    passphrase="master-pass",
    uid=165111215,
    permissions=("General", "Spot", "Margin", "Futures", "Earn", "InnerTransfer", "Transfer"),
    ip_whitelist=("127.0.0.1", "203.0.113.154"),
    remark="treasury",
    created_at=1728443843000,
    spot=(
        {"id": "1", "currency": "USDT", "type": "main", "balance": "10", "available": "10"},
        {"id": "2", "currency": "USDT", "type": "trade", "balance": "5.5", "available": "5.5"},
        {
            "id": "3",
            "currency": "BTC",
            "type": "trade_hf",
            "balance": "0.1",
            "available": "0.05",
            "holds": "0.05",
        },
    ),
    futures={"USDT": {"accountEquity": 394.439280806, "availableBalance": 290.326799096}},
)
SUB = SimAccount(
    api_key="67b3a1f0e4b0c10001a2b3c4",
    api_secret="3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
    passphrase="sub-pass",
    uid=226348597,
    permissions="General,Futures",
    is_master=False,
    sub_name="mmbot01",
    created_at=1731060000000,
    spot=({"id": "4", "currency": "ETH", "type": "trade", "balance": "1", "available": "1"},),
)
GENERAL_ONLY = SimAccount(
    api_key="5c2db93503aa674c74a31734",
    api_secret="f03a5284-5c39-4aaa-9b20-dea10bdcf8e3",
    passphrase="my-passphrase",
    uid=310022817,
    permissions=["General"],
    spot=({"id": "5", "currency": "USDT", "type": "trade", "balance": "1", "available": "1"},),
)
NO_GENERAL = SimAccount(
    api_key="63b0c5d6e7f8a9b0c1d2e3f4",
    api_secret="9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
    passphrase="spot-only",
    uid=402771164,
    permissions=["Spot"],
)
FROZEN = SimAccount(
    api_key="64c1d2e3f4a5b6c7d8e9f0a1",
    api_secret="1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    passphrase="frozen-pass",
    uid=517300642,
    frozen=True,
)
ELSEWHERE = SimAccount(
    api_key="65d2e3f4a5b6c7d8e9f0a1b2",
    api_secret="2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
    passphrase="office-pass",
    uid=618400753,
    ip_whitelist=["198.51.100.7", "2001:db8::7334"],
)
ALL_ACCOUNTS = (MASTER, SUB, GENERAL_ONLY, NO_GENERAL, FROZEN, ELSEWHERE)

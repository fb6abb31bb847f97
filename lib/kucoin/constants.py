"""KuCoin hosts, paths, pools, weights and codes: one place for each fact."""

from __future__ import annotations

from dataclasses import dataclass

SPOT_URL = "https://api.kucoin.com"
FUTURES_URL = "https://api-futures.kucoin.com"
DEFAULT_KEY_VERSION = "3"
ACCEPTED_KEY_VERSIONS = ("2", "3")

SUCCESS_CODE = "200000"
# KuCoin rejects a timestamp more than this far from its clock (reference §1.4).
MAX_CLOCK_SKEW_MS = 5_000
# "You may add up to 20 IPs" to one key's whitelist (reference §5).
MAX_WHITELIST_IPS = 20
RATE_WINDOW_MS = 30_000
# The legacy CDN limit per egress IP across every endpoint: 500 requests per 10 s, then
# Cloudflare's error 1015 and a 30 s block (reference §4, "rate limit 1.0").
CDN_IP_LIMIT = 500
CDN_IP_WINDOW_S = 10
CDN_BLOCK_S = 30
# What bindwatch spends per egress IP by default: a fifth under the CDN's limit, leaving room
# for anything else that calls KuCoin from the same IP.
DEFAULT_IP_BUDGET = 400
# A check (every request and retry of it) that has not finished after this long is given up:
# transient, and DEGRADED until the next one passes.
CHECK_DEADLINE_S = 15.0

# Paths.
TIMESTAMP = "/api/v1/timestamp"
MY_IP = "/api/v1/my-ip"
API_KEY_INFO = "/api/v1/user/api-key"
ACCOUNTS = "/api/v1/accounts"
USER_INFO = "/api/v2/user-info"
FUTURES_OVERVIEW = "/api/v1/account-overview"

# Permission names as KuCoin writes them in key info's `permission` string.
GENERAL = "General"
SPOT = "Spot"
MARGIN = "Margin"
FUTURES = "Futures"
EARN = "Earn"
INNER_TRANSFER = "InnerTransfer"
TRANSFER = "Transfer"
TRADING_PERMISSIONS = (SPOT, MARGIN, FUTURES)
KNOWN_PERMISSIONS = (GENERAL, SPOT, MARGIN, FUTURES, EARN, INNER_TRANSFER, TRANSFER)


@dataclass(frozen=True)
class Endpoint:
    """One KuCoin REST endpoint: host, path, permission needed, rate-limit pool and weight."""

    host: str  # "spot" or "futures"
    path: str
    permission: str | None  # None: public
    pool: str
    weight: int


# [SPEC] x-api-permission / x-api-rate-limit-pool / x-api-rate-limit-weight (reference §2.3).
ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    ("spot", TIMESTAMP): Endpoint("spot", TIMESTAMP, None, "Public", 3),
    ("futures", TIMESTAMP): Endpoint("futures", TIMESTAMP, None, "Public", 2),
    ("spot", MY_IP): Endpoint("spot", MY_IP, None, "Public", 0),
    ("spot", API_KEY_INFO): Endpoint("spot", API_KEY_INFO, GENERAL, "Management", 20),
    ("spot", USER_INFO): Endpoint("spot", USER_INFO, GENERAL, "Management", 20),
    ("spot", ACCOUNTS): Endpoint("spot", ACCOUNTS, GENERAL, "Management", 5),
    ("futures", FUTURES_OVERVIEW): Endpoint("futures", FUTURES_OVERVIEW, FUTURES, "Futures", 5),
}

# VIP0 quotas per 30 s window (reference §4).
POOL_QUOTAS = {
    "Spot": 4000,
    "Futures": 2000,
    "Management": 2000,
    "Earn": 2000,
    "CopyTrading": 2000,
    "Public": 2000,
}

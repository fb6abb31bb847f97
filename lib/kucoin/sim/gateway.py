"""The simulated KuCoin gateway: its rules, in order, and the few endpoints bindwatch needs.

One `Simulator` holds the state (accounts, rate-limit windows, injected faults) and answers
each SimRequest; lib.kucoin.sim.server carries it over real HTTP, `spot_transport()` /
`futures_transport()` in-process (lib.kucoin.sim.transport).

A request goes through these steps; the first that fails answers:

    0. the CDN's limit per caller IP, when one is set (`ip_limit` requests per `ip_window_s`):
       past it, Cloudflare's "error 1015" HTML page (HTTP 429) for `ip_block_s` seconds
    1. injected faults of the server, then of the account named by KC-API-KEY: the latency is
       slept first, then a dropped connection, a CDN HTML page, an overload 429000 (no rate-limit
       headers) or a 5xx, in that order of precedence
    2. route: an unknown path, or the other host's path    -> 404  {"code":"404",...}
       a known path with a method other than GET          -> 405  {"code":"405",...}
    3. public endpoint: per-IP Public pool                 -> 429  429000, else the data
    4. KC-API-KEY/-SIGN/-TIMESTAMP/-PASSPHRASE present and non-empty, timestamp numeric
                                                           -> 400  400001
    5. KC-API-KEY-VERSION is "2" or "3"                    -> 400  400009
    6. |KC-API-TIMESTAMP - simulator clock| <= 5000 ms     -> 400  400002
    7. the key exists                                      -> 401  400003
    8. KC-API-SIGN over the request as received            -> 401  400005
    9. passphrase = base64(HMAC-SHA256(secret, passphrase)) -> 401  400004
   10. the UID's pool has quota left (the UID is proven now, so it is charged)
                                                           -> 429  429000
   11. caller IP in the key's whitelist, if it has one     -> 403  400006
   12. the account is not frozen                           -> 403  411100
   13. the key has the endpoint's permission               -> 403  400007

Cheap header checks come first, then the key lookup, then what needs the secret, then the
account's policy: the order a gateway most plausibly applies. Requests refused before step 10 are
not charged; their gw-ratelimit-* headers show the bucket they would have been charged to.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import ipaddress
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

from lib.kucoin import constants as k
from lib.kucoin.sim.accounts import FUTURES_FIELDS, AccountsError, Faults, SimAccount, load_accounts
from lib.kucoin.sim.transport import SimulatorTransport
from lib.kucoin.sim.wire import DROPPED, FUTURES, SPOT, SimRequest, SimResponse

HF_ACCOUNTS_OPENED = "/api/v1/hf/accounts/opened"

# Endpoints served beyond lib.kucoin.constants.ENDPOINTS: ccxt's balance path asks this one
# first to decide between type=trade and type=trade_hf ([SPEC] General, Spot pool, weight 30).
ENDPOINTS: dict[tuple[str, str], k.Endpoint] = {
    **k.ENDPOINTS,
    (SPOT, HF_ACCOUNTS_OPENED): k.Endpoint(SPOT, HF_ACCOUNTS_OPENED, k.GENERAL, "Spot", 30),
}

# Messages of the gateway codes (reference §3.1, docs-new; 400001 as KuCoin answers it live).
MESSAGES = {
    "400001": (
        "Please check the header of your request for "
        "KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE"
    ),
    "400002": "Invalid KC-API-TIMESTAMP.",
    "400003": "KC-API-KEY does not exist.",
    "400004": "Invalid KC-API-PASSPHRASE.",
    "400005": "Invalid KC-API-SIGN.",
    "400006": "Invalid request IP, the current client IP is: {ip}.",
    "400007": "Access denied, requires more permission.",
    "400009": "Invalid KC-API-KEY-VERSION.",
    "411100": "User are frozen",
    "429000": "Too Many Requests",
    "500000": "Internal Server Error",
}
REQUIRED_HEADERS = ("kc-api-key", "kc-api-sign", "kc-api-timestamp", "kc-api-passphrase")
DEFAULT_FUTURES_CURRENCY = "XBT"

_CDN_PAGE = """<!DOCTYPE html>
<html lang="en-US">
<head><title>Access denied | api.kucoin.com used Cloudflare to restrict access</title>
<meta charset="UTF-8"></head>
<body>
<div id="cf-wrapper">
<h1><span class="cf-error-type">Error</span> <span class="cf-error-code">1015</span></h1>
<h2 class="cf-subheadline">You are being rate limited</h2>
<p>The owner of this website (api.kucoin.com) has banned you temporarily from accessing this
website.</p>
<p>Please enable cookies.</p>
<p>Cloudflare Ray ID: <strong>{ray}</strong> &bull; Your IP: {ip} &bull;
Performance &amp; security by Cloudflare</p>
</div>
</body>
</html>
"""


def mask_ip(ip: str) -> str:
    """Return an IP masked as KuCoin's key info shows it: "203.0.113.154" -> "203.**.154".

    IPv6 (undocumented by KuCoin) is masked the same way: first and last group, "2001:**:7334".
    """
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        octets = str(address).split(".")
        return f"{octets[0]}.**.{octets[-1]}"
    groups = address.exploded.split(":")
    return f"{int(groups[0], 16):x}:**:{int(groups[-1], 16):x}"


def _hmac_b64(key: bytes, message: bytes) -> str:
    """Return base64(HMAC-SHA256(key, message))."""
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _signed_forms(target: str) -> set[str]:
    """Return the endpoint strings a valid KC-API-SIGN may cover for this request target."""
    path, sep, query = target.partition("?")
    # KuCoin signs the query un-encoded (§1.2); the SDK sends it encoded, ccxt raw: accept both.
    return {target, unquote(path) + sep + unquote_plus(query), unquote(target)}


def _same_ip(a: str, b: str) -> bool:
    """Return whether two IP strings name the same address (IPv4-mapped IPv6 included)."""
    try:
        left, right = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return a == b
    if isinstance(left, ipaddress.IPv6Address) and left.ipv4_mapped:
        left = left.ipv4_mapped
    if isinstance(right, ipaddress.IPv6Address) and right.ipv4_mapped:
        right = right.ipv4_mapped
    return left == right


@dataclass
class _Window:
    """One rate-limit window of a (UID or IP, pool) bucket."""

    started_ms: float
    used: int = 0


class Simulator:
    """KuCoin's gateway and the few endpoints bindwatch needs, for a registry of accounts."""

    def __init__(
        self,
        accounts: Iterable[SimAccount] = (),
        *,
        caller_ip: str | None = None,
        quotas: Mapping[str, int] | None = None,
        window_ms: int = k.RATE_WINDOW_MS,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        ip_limit: int | None = None,
        ip_window_s: float = k.CDN_IP_WINDOW_S,
        ip_block_s: float = k.CDN_BLOCK_S,
    ) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, SimAccount] = {}
        for account in accounts:
            self.add_account(account)
        if caller_ip is not None:
            ipaddress.ip_address(caller_ip)  # raise ValueError early on a typo
        self.caller_ip = caller_ip
        self.quotas = {**k.POOL_QUOTAS, **(quotas or {})}
        if window_ms <= 0:
            raise ValueError("window_ms must be positive")
        self.window_ms = window_ms
        self._faults = faults or Faults()
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[tuple[str, str], _Window] = {}
        if ip_limit is not None and ip_limit < 1:
            raise ValueError("ip_limit must be at least 1 (None: no limit)")
        # The CDN in front of the gateway: every request of an IP counts, whatever it asks.
        self.ip_limit = ip_limit
        self.ip_window_s = ip_window_s
        self.ip_block_s = ip_block_s
        self._ip_requests: dict[str, collections.deque[float]] = {}
        self._ip_blocked_until: dict[str, float] = {}

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Simulator:
        """Return a simulator serving the accounts of a JSON accounts file."""
        return cls(load_accounts(path), **options)

    def __repr__(self) -> str:
        return f"Simulator({len(self._accounts)} accounts, caller_ip={self.caller_ip!r})"

    # Accounts.

    @property
    def accounts(self) -> list[SimAccount]:
        """Return the accounts served, in registration order."""
        with self._lock:
            return list(self._accounts.values())

    def account(self, api_key: str) -> SimAccount:
        """Return the account of a key; raise KeyError when unknown."""
        with self._lock:
            return self._accounts[api_key]

    def add_account(self, account: SimAccount) -> None:
        """Serve one more account; raise AccountsError when its key is already served."""
        with self._lock:
            if account.api_key in self._accounts:
                raise AccountsError(f"{account.label}: field 'api_key': already served")
            self._accounts[account.api_key] = account

    def remove_account(self, api_key: str) -> None:
        """Stop serving a key (later calls get 400003, as for a deleted key)."""
        with self._lock:
            del self._accounts[api_key]

    def update_account(self, api_key: str, **changes: Any) -> SimAccount:
        """Change fields of an account at runtime (e.g. frozen=True); return the new account."""
        with self._lock:
            updated = replace(self._accounts[api_key], **changes)
            if updated.api_key != api_key:
                raise AccountsError("field 'api_key': cannot be changed; add a new account")
            self._accounts[api_key] = updated
            return updated

    # Faults, clock and rate limits.

    def faults(self, api_key: str | None = None) -> Faults:
        """Return the faults of the server, or of one account when api_key is given."""
        with self._lock:
            return self._faults if api_key is None else self._accounts[api_key].faults

    def set_faults(self, api_key: str | None = None, **changes: Any) -> Faults:
        """Change fault settings of the server (or of one account); return the new settings."""
        with self._lock:
            if api_key is None:
                self._faults = replace(self._faults, **changes)
                return self._faults
            return self.update_account(
                api_key, faults=replace(self._accounts[api_key].faults, **changes)
            ).faults

    def clear_faults(self, api_key: str | None = None) -> None:
        """Remove every injected fault of the server (or of one account)."""
        with self._lock:
            if api_key is None:
                self._faults = Faults()
            else:
                self.update_account(api_key, faults=Faults())

    def set_latency(self, ms: int, api_key: str | None = None) -> None:
        """Delay every answer by ms milliseconds."""
        self.set_faults(api_key, latency_ms=ms)

    def set_clock_offset(self, ms: int, api_key: str | None = None) -> None:
        """Run the simulator's clock ms milliseconds ahead (negative: behind) of this machine's."""
        self.set_faults(api_key, clock_offset_ms=ms)

    def fail_next(self, count: int = 1, *, status: int = 500, api_key: str | None = None) -> None:
        """Answer the next count requests with HTTP 500 (500000) or 503 (maintenance)."""
        self.set_faults(api_key, fail_next=count, fail_status=status)

    def overload_next(self, count: int = 1, *, api_key: str | None = None) -> None:
        """Answer the next count requests with server-overload 429000 (no rate-limit headers)."""
        self.set_faults(api_key, overload_next=count)

    def cdn_block_next(
        self, count: int = 1, *, status: int = 403, api_key: str | None = None
    ) -> None:
        """Answer the next count requests with a Cloudflare-like HTML error 1015 page."""
        self.set_faults(api_key, cdn_next=count, cdn_status=status)

    def drop_next(self, count: int = 1, *, api_key: str | None = None) -> None:
        """Close the connection of the next count requests without answering."""
        self.set_faults(api_key, drop_next=count)

    def now_ms(self, api_key: str | None = None) -> int:
        """Return the simulator's clock in ms (with the account's offset when api_key is given)."""
        with self._lock:
            offset = self._faults.clock_offset_ms
            if api_key is not None and api_key in self._accounts:
                offset += self._accounts[api_key].faults.clock_offset_ms
        return int(self._clock() * 1000) + offset

    def reset_rate_limits(self) -> None:
        """Forget every rate-limit window, and the CDN's count and blocks per IP."""
        with self._lock:
            self._windows.clear()
            self._ip_requests.clear()
            self._ip_blocked_until.clear()

    # Transports.

    def spot_transport(self, caller_ip: str = "127.0.0.1") -> SimulatorTransport:
        """Return an httpx transport answering as the spot host (api.kucoin.com)."""
        return SimulatorTransport(self, SPOT, caller_ip)

    def futures_transport(self, caller_ip: str = "127.0.0.1") -> SimulatorTransport:
        """Return an httpx transport answering as the futures host (api-futures.kucoin.com)."""
        return SimulatorTransport(self, FUTURES, caller_ip)

    # Requests.

    def handle(self, request: SimRequest) -> SimResponse:
        """Return the answer to one request (sleeping the injected latency first)."""
        api_key = request.header("KC-API-KEY")
        with self._lock:
            fault, self._faults = _fire(self._faults)
            latency = self._faults.latency_ms
            account = self._accounts.get(api_key) if api_key else None
            if account is not None:
                latency += account.faults.latency_ms
                if fault is None:
                    fault, faults = _fire(account.faults)
                    if faults is not account.faults:
                        self._accounts[account.api_key] = replace(account, faults=faults)
        ip = self.caller_ip or request.peer_ip
        if not self._within_ip_limit(ip):
            return self._fault_response(("cdn_next", 429), ip)
        if latency > 0:
            self._sleep(latency / 1000)
        if fault is not None:
            return self._fault_response(fault, ip)
        return self._respond(request, ip)

    def _within_ip_limit(self, ip: str) -> bool:
        """Count one request of an IP; return False while the IP is over the CDN's limit."""
        if self.ip_limit is None:
            return True
        now = self._clock()
        with self._lock:
            if self._ip_blocked_until.get(ip, 0.0) > now:
                return False
            recent = self._ip_requests.setdefault(ip, collections.deque())
            while recent and recent[0] <= now - self.ip_window_s:
                recent.popleft()
            if len(recent) >= self.ip_limit:
                self._ip_blocked_until[ip] = now + self.ip_block_s
                return False
            recent.append(now)
            return True

    def _fault_response(self, fault: tuple[str, int], ip: str) -> SimResponse:
        """Return the answer of an injected fault."""
        kind, status = fault
        if kind == "drop_next":
            return DROPPED
        if kind == "cdn_next":
            ray = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:16]
            page = _CDN_PAGE.format(ray=ray, ip=ip).encode()
            headers = (("Content-Type", "text/html; charset=UTF-8"), ("Server", "cloudflare"))
            return SimResponse(status, headers, page)
        if kind == "overload_next":
            # Server overload carries no personal rate-limit headers (reference §4).
            return _json_response(429, {"code": "429000", "msg": MESSAGES["429000"]})
        if status == 503:
            body = {"code": "503", "msg": "Service Unavailable", "retry": True, "success": False}
            return _json_response(503, body)
        return _json_response(500, {"code": "500000", "msg": MESSAGES["500000"]})

    def _respond(self, request: SimRequest, ip: str) -> SimResponse:
        """Return the answer of the gateway and endpoint (no injected fault)."""
        path = unquote(request.target.partition("?")[0])
        endpoint = ENDPOINTS.get((request.host, path))
        if endpoint is None:
            body = {"code": "404", "msg": "Not Found", "retry": False, "success": False}
            return _json_response(404, body, self._peek(f"ip:{ip}", "Public"))
        if request.method != "GET":
            body = {"code": "405", "msg": "Method Not Allowed", "retry": False, "success": False}
            return _json_response(405, body, self._peek(f"ip:{ip}", endpoint.pool))
        if endpoint.permission is None:
            allowed, limits = self._charge(f"ip:{ip}", endpoint)
            if not allowed:
                return _error(429, "429000", limits)
            return _ok(self._public_data(request, endpoint, ip), limits)

        account, refusal = self._authenticate(request, endpoint, ip)
        if refusal is not None:
            return refusal
        assert account is not None
        allowed, limits = self._charge(f"uid:{account.uid}", endpoint)
        if not allowed:
            return _error(429, "429000", limits)
        if account.ip_whitelist and not any(_same_ip(ip, e) for e in account.ip_whitelist):
            return _error(403, "400006", limits, ip=ip)
        if account.frozen:
            return _error(403, "411100", limits)
        if endpoint.permission not in account.permissions:
            return _error(403, "400007", limits)
        return _ok(self._private_data(request, endpoint, account), limits)

    def _authenticate(
        self, request: SimRequest, endpoint: k.Endpoint, ip: str
    ) -> tuple[SimAccount | None, SimResponse | None]:
        """Return the account a request proves it holds the key of, or the refusal."""
        values = {name: (request.header(name) or "").strip() for name in REQUIRED_HEADERS}
        api_key = values["kc-api-key"]
        with self._lock:
            account = self._accounts.get(api_key)
        bucket = f"uid:{account.uid}" if account else f"ip:{ip}"
        limits = self._peek(bucket, endpoint.pool)
        if not all(values.values()) or not values["kc-api-timestamp"].isdigit():
            return None, _error(400, "400001", limits)
        if (request.header("KC-API-KEY-VERSION") or "").strip() not in k.ACCEPTED_KEY_VERSIONS:
            return None, _error(400, "400009", limits)
        timestamp = values["kc-api-timestamp"]
        if abs(int(timestamp) - self.now_ms(api_key)) > k.MAX_CLOCK_SKEW_MS:
            return None, _error(400, "400002", limits)
        if account is None:
            return None, _error(401, "400003", limits)
        secret = account.api_secret.reveal().encode()
        # The signature is checked before the passphrase: a wrong Secret then reads as 400005
        # and a wrong passphrase with the right Secret as 400004, the causes the codes name.
        sign = values["kc-api-sign"].encode()
        prefix = timestamp + request.method.upper()
        if not any(
            hmac.compare_digest(
                sign, _hmac_b64(secret, (prefix + form).encode() + request.body).encode()
            )
            for form in _signed_forms(request.target)
        ):
            return None, _error(401, "400005", limits)
        expected = _hmac_b64(secret, account.passphrase.reveal().encode())
        if not hmac.compare_digest(values["kc-api-passphrase"].encode(), expected.encode()):
            return None, _error(401, "400004", limits)
        return account, None

    def _public_data(self, request: SimRequest, endpoint: k.Endpoint, ip: str) -> Any:
        """Return the data of a public endpoint."""
        if endpoint.path == k.MY_IP:
            return ip
        return self.now_ms(request.header("KC-API-KEY"))

    def _private_data(self, request: SimRequest, endpoint: k.Endpoint, account: SimAccount) -> Any:
        """Return the data of a private endpoint for an authenticated account."""
        query = dict(parse_qsl(request.target.partition("?")[2], keep_blank_values=True))
        if endpoint.path == k.API_KEY_INFO:
            return key_info(account)
        if endpoint.path == k.ACCOUNTS:
            rows = [dict(row) for row in account.spot]
            for name in ("currency", "type"):
                if query.get(name):
                    rows = [row for row in rows if row[name] == query[name]]
            return rows
        if endpoint.path == k.USER_INFO:
            return dict(account.user_info)
        if endpoint.path == HF_ACCOUNTS_OPENED:
            return any(row["type"] == "trade_hf" for row in account.spot)
        currency = query.get("currency") or DEFAULT_FUTURES_CURRENCY
        overview = account.futures.get(currency) or dict.fromkeys(FUTURES_FIELDS, 0.0)
        return {**overview, "currency": currency}

    def _charge(self, who: str, endpoint: k.Endpoint) -> tuple[bool, tuple[int, int, int]]:
        """Deduct an endpoint's weight from a bucket; return (allowed, (limit, left, reset))."""
        quota = self.quotas[endpoint.pool]
        now = self._clock() * 1000
        with self._lock:
            window = self._windows.get((who, endpoint.pool))
            if window is None or now >= window.started_ms + self.window_ms:
                # The window starts at the first request and lasts window_ms (reference §4).
                window = self._windows[(who, endpoint.pool)] = _Window(now)
            allowed = window.used + endpoint.weight <= quota
            if allowed:
                window.used += endpoint.weight
            reset = math.ceil(window.started_ms + self.window_ms - now)
            return allowed, (quota, max(quota - window.used, 0), max(reset, 0))

    def _peek(self, who: str, pool: str) -> tuple[int, int, int]:
        """Return a bucket's (limit, remaining, reset) without charging it."""
        quota = self.quotas[pool]
        now = self._clock() * 1000
        with self._lock:
            window = self._windows.get((who, pool))
            if window is None or now >= window.started_ms + self.window_ms:
                return quota, quota, self.window_ms
            reset = math.ceil(window.started_ms + self.window_ms - now)
            return quota, max(quota - window.used, 0), max(reset, 0)


def key_info(account: SimAccount) -> dict[str, Any]:
    """Return GET /api/v1/user/api-key data: whitelist masked, absent when there is none."""
    data: dict[str, Any] = {
        "remark": account.remark,
        "apiKey": account.api_key,
        "apiVersion": 3,
        "permission": ",".join(account.permissions),
    }
    if account.ip_whitelist:
        data["ipWhitelist"] = ",".join(mask_ip(ip) for ip in account.ip_whitelist)
    data.update(createdAt=account.created_at, uid=account.uid, isMaster=account.is_master)
    if not account.is_master:
        data["subName"] = account.sub_name
    return data


def _fire(faults: Faults) -> tuple[tuple[str, int] | None, Faults]:
    """Return the counted fault this request triggers (kind, status) and the faults left."""
    for name, status in (
        ("drop_next", 0),
        ("cdn_next", faults.cdn_status),
        ("overload_next", 429),
        ("fail_next", faults.fail_status),
    ):
        count = getattr(faults, name)
        if count:
            left = faults if count < 0 else replace(faults, **{name: count - 1})
            return (name, status), left
    return None, faults


def _rate_headers(limits: tuple[int, int, int]) -> tuple[tuple[str, str], ...]:
    """Return the gw-ratelimit-* headers of a bucket's (limit, remaining, reset)."""
    limit, remaining, reset = limits
    return (
        ("gw-ratelimit-limit", str(limit)),
        ("gw-ratelimit-remaining", str(remaining)),
        ("gw-ratelimit-reset", str(reset)),
    )


def _json_response(
    status: int, body: object, limits: tuple[int, int, int] | None = None
) -> SimResponse:
    """Return a JSON answer, with rate-limit headers when a bucket is given."""
    headers = (("Content-Type", "application/json"),)
    if limits is not None:
        headers += _rate_headers(limits)
    return SimResponse(status, headers, json.dumps(body, separators=(",", ":")).encode())


def _ok(data: Any, limits: tuple[int, int, int]) -> SimResponse:
    """Return KuCoin's success envelope."""
    return _json_response(200, {"code": k.SUCCESS_CODE, "data": data}, limits)


def _error(status: int, code: str, limits: tuple[int, int, int], **fmt: str) -> SimResponse:
    """Return KuCoin's error envelope for a gateway code."""
    return _json_response(status, {"code": code, "msg": MESSAGES[code].format(**fmt)}, limits)

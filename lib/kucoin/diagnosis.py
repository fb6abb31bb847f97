"""KuCoin's codes in plain language: one table of cause and fix (reference §3.4, peers §7).

Which codes are overload rather than a verdict on the key is decided here too
(`is_transient_code`): the client's exceptions and the health rules both ask it.
"""

from __future__ import annotations

from dataclasses import dataclass

API_MANAGEMENT = "KuCoin → Profile → API Management"
SERVER_ERROR_PREFIX = "5"  # 5xxxxx: KuCoin failed to answer
TIMESTAMP_CODE = "400002"  # the request's timestamp was more than 5 s off on arrival
RATE_LIMIT_CODE = "429000"  # a pool ran out (with gw-ratelimit-* headers) or KuCoin is overloaded
# Not KuCoin's: a check that did not finish within its deadline.
DEADLINE_CODE = "deadline"
# Codes that say KuCoin is busy or slow, not that the key or the request is wrong: a retry may pass.
TRANSIENT_CODES = frozenset({RATE_LIMIT_CODE, DEADLINE_CODE})


def is_transient_code(code: object) -> bool:
    """Return whether KuCoin's code means overload or a server error, not a verdict on the key."""
    return isinstance(code, str) and (
        code in TRANSIENT_CODES or code.startswith(SERVER_ERROR_PREFIX)
    )


@dataclass(frozen=True)
class Diagnosis:
    """What a failure means and what the operator should do about it."""

    code: str
    title: str
    cause: str
    fix: str


_TABLE: dict[str, Diagnosis] = {
    d.code: d
    for d in (
        Diagnosis(
            "400001",
            "Missing or malformed authentication headers",
            "KuCoin did not receive all of Key, Sign, Timestamp and Passphrase, or the "
            "timestamp was not a number of milliseconds.",
            "Key, Secret and Passphrase are all required: re-paste them and make sure none is "
            "empty.",
        ),
        Diagnosis(
            "400002",
            "Clock out of sync",
            "The request's timestamp was more than 5 seconds away from KuCoin's clock.",
            "Enable NTP time sync on this machine. bindwatch signs with KuCoin-corrected time, "
            "so a retry usually passes.",
        ),
        Diagnosis(
            "400003",
            "API key not found",
            "KuCoin does not know this API key: a typo, a deleted key (including KuCoin's "
            "30-day deletion of unused trading keys without an IP whitelist), a key from "
            "another KuCoin site, or the Secret pasted into the Key field.",
            f"Copy the API Key again from {API_MANAGEMENT}; if the key is gone, create a new "
            "one and rotate this account's credentials.",
        ),
        Diagnosis(
            "400004",
            "Wrong API passphrase",
            "The passphrase does not match this key.",
            "The API Passphrase is the one typed when creating this key on KuCoin, not the "
            "login or trading password. If it is lost, create a new key.",
        ),
        Diagnosis(
            "400005",
            "Wrong API secret",
            "The signature did not verify: the Secret does not belong to this key (or a proxy "
            "altered the request).",
            "Re-paste the API Secret shown when the key was created; if it is lost, create a "
            "new key and rotate this account's credentials.",
        ),
        Diagnosis(
            "400006",
            "IP not whitelisted",
            "This key is IP-restricted and the request came from an IP that is not on its "
            "whitelist.",
            f"In {API_MANAGEMENT} → Edit → IP Restriction, add the IP KuCoin saw, or disable "
            "IP restriction for testing.",
        ),
        Diagnosis(
            "400007",
            "Permission missing",
            "The key lacks a permission this call needs (General for key info and balances, "
            "Futures for the futures balance).",
            f"In {API_MANAGEMENT} → Edit → API Restrictions, enable the missing permission.",
        ),
        Diagnosis(
            "400008",
            "Old API key version",
            "KuCoin no longer accepts V1/V2 keys on this API.",
            f"Create a new (V3) API key in {API_MANAGEMENT} and rotate this account's credentials.",
        ),
        Diagnosis(
            "400009",
            "Invalid key-version header",
            "The KC-API-KEY-VERSION header was not one KuCoin accepts.",
            "Set the key-version header to 3 (or 2) in Settings.",
        ),
        Diagnosis(
            "411100",
            "Account frozen",
            "KuCoin has frozen this account.",
            "Contact KuCoin support; nothing on this key can fix it.",
        ),
        Diagnosis(
            "415000",
            "Unsupported media type",
            "The request lacked Content-Type: application/json.",
            "This is a bindwatch bug: report it.",
        ),
        Diagnosis(
            RATE_LIMIT_CODE,
            "Rate limited",
            "A rate-limit pool of this key's UID ran out (429000 with KuCoin's rate-limit "
            "headers). KuCoin counts each pool per UID: every key of the account, and every "
            "other client using one, spends the same quota.",
            "Nothing to change on the key: the check is retried once the pool resets. bindwatch "
            "paces its own checks per UID, so if this repeats, another client on the same UID "
            "is spending the quota: look for bots or scripts using keys of this account.",
        ),
        Diagnosis(
            "500000",
            "KuCoin internal error",
            "KuCoin failed to answer the request.",
            "Retry later; check KuCoin's status page if it persists.",
        ),
    )
}

UNREACHABLE = Diagnosis(
    "unreachable",
    "KuCoin unreachable",
    "No usable answer: a timeout, a dropped connection, a server error, or a CDN page "
    "instead of KuCoin's JSON (rate limited or blocked by region).",
    "Retry shortly. If every account fails the same way, check this machine's network and "
    "KuCoin's status; if the CDN blocks this network, wait or use another egress.",
)


# 429000 without the rate-limit headers: KuCoin sheds load; no quota was spent (reference §4).
OVERLOADED = Diagnosis(
    RATE_LIMIT_CODE,
    "KuCoin overloaded",
    "KuCoin answered 429000 without rate-limit headers: the server is overloaded and refused "
    "the request; it does not count against this key's quota.",
    "Nothing to change: the check is retried shortly. If every account shows it, KuCoin is "
    "overloaded: wait.",
)

DEADLINE = Diagnosis(
    DEADLINE_CODE,
    "Check timed out",
    "The check did not finish within its deadline: KuCoin or the network between this machine "
    "and KuCoin answered too slowly.",
    "Nothing to change on the key: the next check retries. If every check is slow, check this "
    "machine's network and KuCoin's status.",
)


# 400002 although this machine's clock agrees with KuCoin's: the request itself was late.
LATE_REQUEST = Diagnosis(
    TIMESTAMP_CODE,
    "Request reached KuCoin too late",
    "KuCoin found the request's timestamp more than 5 seconds old on arrival, yet this "
    "machine's clock agrees with KuCoin's: the request spent that long in transit.",
    "Check for a slow proxy, VPN or network path between this machine and KuCoin; the next "
    "check retries.",
)


def rate_limit_diagnosis(limited_pool: str | None) -> Diagnosis:
    """Return a 429000's diagnosis: a pool that ran out (its name known), else overload."""
    return _TABLE[RATE_LIMIT_CODE] if limited_pool else OVERLOADED


def diagnose(code: str | None) -> Diagnosis:
    """Return the diagnosis for KuCoin's code; unknown codes get a generic one naming the code."""
    if code is None:
        return UNREACHABLE
    if code == DEADLINE_CODE:
        return DEADLINE
    known = _TABLE.get(code)
    if known:
        return known
    if code.startswith(SERVER_ERROR_PREFIX):
        return _TABLE["500000"]
    return Diagnosis(
        code,
        f"KuCoin error {code}",
        "KuCoin rejected the request with a code bindwatch has no explanation for.",
        "Read KuCoin's message below; search KuCoin's API docs for the code.",
    )

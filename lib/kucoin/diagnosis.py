"""KuCoin's codes in plain language: one table of cause and fix (reference §3.4, peers §7).

Which codes are overload rather than a verdict on the key is decided here too
(`is_transient_code`): the client's exceptions and the health rules both ask it.
"""

from __future__ import annotations

from dataclasses import dataclass

API_MANAGEMENT = "KuCoin → Profile → API Management"
# Codes that say KuCoin is busy, not that the key or the request is wrong: a retry may pass.
TRANSIENT_CODES = frozenset({"429000"})
SERVER_ERROR_PREFIX = "5"  # 5xxxxx: KuCoin failed to answer
TIMESTAMP_CODE = "400002"  # the request's timestamp was more than 5 s off on arrival


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
            "429000",
            "Rate limited",
            "KuCoin refused the request: the key's quota is exhausted, or KuCoin is "
            "overloaded (then no rate-limit headers are sent).",
            "Wait for the quota to reset (the next check retries automatically); if it "
            "persists, check fewer accounts at a time.",
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


# 400002 although this machine's clock agrees with KuCoin's: the request itself was late.
LATE_REQUEST = Diagnosis(
    TIMESTAMP_CODE,
    "Request reached KuCoin too late",
    "KuCoin found the request's timestamp more than 5 seconds old on arrival, yet this "
    "machine's clock agrees with KuCoin's: the request spent that long in transit.",
    "Check for a slow proxy, VPN or network path between this machine and KuCoin; the next "
    "check retries.",
)


def diagnose(code: str | None) -> Diagnosis:
    """Return the diagnosis for KuCoin's code; unknown codes get a generic one naming the code."""
    if code is None:
        return UNREACHABLE
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

"""What one check says: passed, failed in a way a retry may fix, or KuCoin's verdict.

Transient ("retrying"): no answer, KuCoin's overload codes (429000, 5xx;
lib.kucoin.diagnosis.is_transient_code) even when a probe records them as rejected, and a
400002 while our clock agrees with KuCoin's (|offset| below the policy's `clock_warn_ms`): the
request arrived late because it was slow in transit, which says nothing about the key or the
clock. Every other rejection is KuCoin's verdict on the key.
"""

from __future__ import annotations

from lib.health.policy import DEFAULT_POLICY, HealthPolicy
from lib.kucoin.diagnosis import (
    LATE_REQUEST,
    RATE_LIMIT_CODE,
    TIMESTAMP_CODE,
    UNREACHABLE,
    Diagnosis,
    diagnose,
    is_transient_code,
    rate_limit_diagnosis,
)
from lib.kucoin.probe_result import Outcome, ProbeResult

IP_BLOCKED_CODE = "400006"  # KuCoin refused the IP the call came from, and names it
# Not KuCoin's: the account's stored credentials failed to decrypt, so nothing was asked.
UNREADABLE_CODE = "credentials-unreadable"
UNREADABLE = Diagnosis(
    UNREADABLE_CODE,
    "Credentials cannot be read",
    "The account's stored credentials failed their integrity check (altered, restored from "
    "another row, or sealed with a master key this key file does not hold), so bindwatch "
    "could not ask KuCoin about the key.",
    "Rotate the account's credentials (paste the key again), or unbind the account. Every "
    "other account goes on being checked.",
)


def present(value: object) -> bool:
    """Return whether a value is known: not None, NaN, NaT or pandas' NA."""
    if value is None:
        return False
    try:
        return bool(value == value)  # False for NaN and NaT
    except TypeError:  # pandas' NA refuses to be a bool
        return False


def clocks_agree(clock_offset_ms: object, policy: HealthPolicy = DEFAULT_POLICY) -> bool:
    """Return whether a measured offset is too small to be a clock problem (unknown: no)."""
    return present(clock_offset_ms) and not policy.clock_off(int(clock_offset_ms))


def is_transient(
    outcome: str | None,
    code: str | None,
    clock_offset_ms: object = None,
    policy: HealthPolicy = DEFAULT_POLICY,
) -> bool:
    """Return whether a check failed in a way a retry may fix: no answer, overload, slow path."""
    if outcome == Outcome.UNREACHABLE:
        return True
    if outcome != Outcome.REJECTED:
        return False
    late = code == TIMESTAMP_CODE and clocks_agree(clock_offset_ms, policy)
    return is_transient_code(code) or late


def check_result(
    outcome: str | None,
    code: str | None,
    clock_offset_ms: object = None,
    policy: HealthPolicy = DEFAULT_POLICY,
) -> str:
    """Return "ok", "retrying" (a transient failure) or "rejected" for one check."""
    if outcome == Outcome.OK:
        return "ok"
    return "retrying" if is_transient(outcome, code, clock_offset_ms, policy) else "rejected"


def code_diagnosis(code: str | None) -> Diagnosis:
    """Return what a refusal's code means and its fix: KuCoin's codes, and our unreadable one."""
    return UNREADABLE if code == UNREADABLE_CODE else diagnose(code)


def transient_diagnosis(code: str | None, limited_pool: str | None = None) -> Diagnosis:
    """Return the diagnosis of a transient failure (a code KuCoin sent, or none).

    A 429000 is a rate limit when KuCoin named the pool that ran out (its headers came with
    it), an overload when it did not.
    """
    if code == TIMESTAMP_CODE:  # transient only while the clocks agree: the request was late
        return LATE_REQUEST
    if code == RATE_LIMIT_CODE:
        return rate_limit_diagnosis(limited_pool)
    return diagnose(code) if is_transient_code(code) else UNREACHABLE


def failure_diagnosis(
    result: ProbeResult, policy: HealthPolicy = DEFAULT_POLICY
) -> Diagnosis | None:
    """Return what a failed check means and its fix; None when the check passed."""
    if result.ok:
        return None
    if is_transient(result.outcome, result.code, result.clock_offset_ms, policy):
        return transient_diagnosis(result.code, result.rate_limited_pool)
    return code_diagnosis(result.code)


def ip_evidence(outcome: object, code: object) -> str | None:
    """Return what a check says about the IP it came from: "accepted", "blocked" or None."""
    if outcome == Outcome.OK:
        return "accepted"
    if outcome == Outcome.REJECTED and code == IP_BLOCKED_CODE:
        return "blocked"
    return None

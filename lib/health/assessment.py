"""One check of a key, judged as the Fleet will judge the account bound with it just now.

Binding and `python -m lib check` ask this: what KuCoin's answer means, the status the Fleet
shows a second after binding, its words and every risk. The facts are found here in plain
Python, the way lib.health.fleet finds them for an account whose only check this is, so that
`check` starts without pandas; the status, the risks and the words are the fleet's own
(lib.health.status, risks, wording), and a test holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from lib.health.checks import failure_diagnosis, ip_evidence, is_transient, present
from lib.health.coverage import (
    SCOPE_PERMISSIONS,
    grants_withdrawal,
    has_scope,
    names,
    text,
    trades,
    whitelist_summary,
)
from lib.health.facts import NAT, AccountFacts, nanoseconds
from lib.health.policy import DEFAULT_POLICY, HealthPolicy
from lib.health.risks import RISK_FLAGS, Risk
from lib.health.status import Status, rejection_status, worst_status
from lib.health.wording import Explainer
from lib.kucoin.diagnosis import Diagnosis
from lib.kucoin.probe_result import Outcome, ProbeResult


@dataclass(frozen=True)
class CheckAssessment:
    """What the rules make of one check of a key, for an account that needs some scopes."""

    status: Status  # what the fleet shows for the account once this check is recorded
    diagnosis: str
    hint: str
    risks: tuple[Risk, ...]  # gravest first, as in the fleet's `risks`
    transient: bool  # a failure a retry may fix
    failure: Diagnosis | None  # what KuCoin's refusal means; None when the key works


def assess_check(
    result: ProbeResult, scopes: Iterable[str] | str, policy: HealthPolicy = DEFAULT_POLICY
) -> CheckAssessment:
    """Return the status, words and risks of an account bound with this check just now."""
    if result.checked_at.tzinfo is None:
        raise ValueError("checked_at must be timezone-aware")
    facts = check_facts(result, scopes, policy)
    verdict = rejection_status(facts.verdict_code) if facts.rejected else Status.OK
    status = worst_status(verdict, facts._asdict())
    diagnosis, hint, _, found = Explainer(policy, result.checked_at).explain(facts, status)
    return CheckAssessment(
        status=status,
        diagnosis=diagnosis,
        hint=hint,
        risks=found,
        transient=facts.latest_transient,
        failure=failure_diagnosis(result, policy),
    )


def check_facts(
    result: ProbeResult, scopes: Iterable[str] | str, policy: HealthPolicy
) -> AccountFacts:
    """Return the facts of an account bound at the instant of its only check, this one."""
    now = result.checked_at
    ok = result.outcome == Outcome.OK
    transient = is_transient(result.outcome, result.code, result.clock_offset_ms, policy)
    evidence = ip_evidence(result.outcome, result.code)
    # This one check is the account's newest, its verdict unless transient, its key info when
    # it passed, and its IP evidence when it shows whether our IP passes.
    permissions = names(result.permissions) if ok else frozenset()
    futures_missing = ok and bool(result.futures_permission_missing)
    needed = names(scopes)
    missing = tuple(
        permission
        for scope, permission in SCOPE_PERMISSIONS.items()
        if ok and scope in needed and not has_scope(scope, permissions, futures_missing)
    )
    whitelist = text(result.ip_whitelist) if ok else None
    seen_ip = text(result.seen_ip) if evidence else None
    _, uncovered = whitelist_summary(whitelist, ok, policy.egress_ips, seen_ip, evidence)
    key_age = now - result.key_created_at if ok and result.key_created_at else None
    clock_offset = _int(result.clock_offset_ms) if ok else None
    exposed = ok and trades(permissions) and whitelist is None
    flags = {
        "withdrawal": ok and grants_withdrawal(permissions),
        "exposed": exposed,
        "ip_missing": ok and bool(uncovered),
        "old_key": key_age is not None and bool(policy.key_too_old(key_age)),
        "clock": clock_offset is not None and bool(policy.clock_off(clock_offset)),
    }
    return AccountFacts(
        paused=False,
        unverified=False,  # bound after this check, verified by it or confirmed unverified
        stale=policy.stale_at(now) <= now,
        never_checked=False,
        latest_transient=transient,
        latest_code=text(result.code),
        latest_offset_ms=_int(result.clock_offset_ms),
        latest_limited_pool=text(result.rate_limited_pool),
        latest_reset_at=(
            nanoseconds(now + timedelta(milliseconds=result.rate_limit_reset_ms))
            if result.rate_limit_reset_ms is not None
            else NAT
        ),
        rejected=not transient and result.outcome == Outcome.REJECTED,
        verdict_code=None if transient else text(result.code),
        verdict_endpoint=None if transient else text(result.endpoint),
        verdict_offset_ms=None if transient else _int(result.clock_offset_ms),
        permissions=permissions,
        futures_missing=futures_missing,
        missing_scopes=missing,
        scope_missing=bool(missing),
        seen_ip=seen_ip,
        uncovered=uncovered,
        **flags,
        at_risk=any(flags[name] for name in RISK_FLAGS),
        expires_at=nanoseconds(policy.deleted_if_unused_at(now)) if exposed else NAT,
        key_age_days=key_age // timedelta(days=1) if key_age is not None else None,
        clock_offset_ms=clock_offset,
        last_sync_at=nanoseconds(now) if ok else NAT,
        created_at=nanoseconds(now),
    )


def _int(value: object) -> int | None:
    """Return a whole number, None when unknown."""
    return int(value) if present(value) else None

"""The words: one diagnosis and one next step per account, and a check's verdict line.

The Fleet, the Account page, `status`, binding and `check` all say what these return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from lib.health.checks import code_diagnosis, present, transient_diagnosis
from lib.health.facts import NAT, AccountFacts, timestamp
from lib.health.policy import HealthPolicy
from lib.health.risks import API_RESTRICTIONS, IP_RESTRICTION, Risk, risks
from lib.health.status import Status
from lib.kucoin.constants import ENDPOINTS, FUTURES
from lib.kucoin.diagnosis import LATE_REQUEST, TIMESTAMP_CODE, Diagnosis
from lib.kucoin.probe_result import ProbeResult

if TYPE_CHECKING:
    from lib.health.assessment import CheckAssessment

HEALTHY = ("Key works", "Nothing to do.")
# format_age's steps: from this many seconds old, its text changes every so many seconds.
AGE_STEPS_S = ((86_400, 3_600), (60, 60), (0, 1))
# What the words read of the facts that tell accounts apart, so that the fleet can word every
# group of accounts that read alike once (lib.health.fleet; a test holds this to `explain`):
# facts read only in some cases (each test reads one account's facts or arrays of them alike),
READ_ONLY_WHEN: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "created_at": lambda facts: facts["never_checked"] | (facts["last_sync_at"] == NAT),
    "key_age_days": lambda facts: facts["old_key"],
    "clock_offset_ms": lambda facts: facts["clock"],
    "latest_offset_ms": lambda facts: (
        facts["latest_transient"] & (facts["latest_code"] == TIMESTAMP_CODE)
    ),
    "verdict_offset_ms": lambda facts: (
        facts["rejected"] & (facts["verdict_code"] == TIMESTAMP_CODE)
    ),
    # element-wise on the fleet's arrays, where a missing pool is None
    "latest_reset_at": lambda facts: facts["latest_limited_pool"] != None,  # noqa: E711
}
# times read as an age from now (format_age), and a time read as a date and against now;
AGE_FACTS = ("last_sync_at", "created_at")
DATE_FACTS = ("expires_at",)
# the facts the words of each status read (beside `paused`, and the risks where listed),
_REJECTION_READS = ("verdict_code",)
WORDS_READ: dict[Status, tuple[str, ...]] = {
    **{s: _REJECTION_READS for s in Status if s.rank <= Status.CLOCK_SKEW.rank},
    Status.KEY_UNKNOWN: (*_REJECTION_READS, "expires_at"),
    Status.IP_BLOCKED: (*_REJECTION_READS, "seen_ip"),
    Status.SCOPE_MISSING: (
        *_REJECTION_READS,
        "verdict_endpoint",
        "missing_scopes",
        "futures_missing",
        "permissions",
    ),
    Status.CLOCK_SKEW: (*_REJECTION_READS, "verdict_offset_ms"),
    Status.STALE: (
        "never_checked",
        "created_at",
        "last_sync_at",
        "latest_transient",
        "latest_code",
        "latest_limited_pool",
    ),
    Status.DEGRADED: ("latest_code", "latest_limited_pool", "latest_reset_at", "latest_offset_ms"),
}
# and the statuses whose words list the account's risks (lib.health.risks.RISK_FACTS).
WORDS_LIST_RISKS = (Status.AT_RISK,)


def format_age(age: timedelta | None) -> str | None:
    """Return an age as "2 d 4 h", "3 h 20 min" or "45 s"; None when unknown."""
    if not present(age):
        return None
    seconds = max(int(age.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


def risk_text(found: tuple[Risk, ...]) -> str | None:
    """Return an account's risks as one line, gravest first; None without any."""
    return "; ".join(r.what for r in found) or None


@dataclass(frozen=True)
class Explainer:
    """Turns one account's facts and status into a diagnosis, a hint and its risks."""

    policy: HealthPolicy
    now: datetime

    def explain(
        self, facts: AccountFacts, status: Status, found: tuple[Risk, ...] | None = None
    ) -> tuple[str, str, str | None, tuple[Risk, ...]]:
        """Return (diagnosis, hint, the risks as text, the risks) for one account's status."""
        # status: what the rules chose before a pause, which a paused account's diagnosis names.
        # found: the account's risks, when they are known already.
        found = risks(facts, self.policy) if found is None else found
        diagnosis, hint = self.words(facts, status, found)
        if facts.paused:
            paused = f"Paused (last state: {diagnosis})"
            return paused, "Resume the account to check it.", risk_text(found), found
        return diagnosis, hint, risk_text(found), found

    def words(
        self, facts: AccountFacts, status: Status, found: tuple[Risk, ...]
    ) -> tuple[str, str]:
        """Return (diagnosis, hint) for the status the rules chose."""
        if status is Status.SCOPE_MISSING and facts.missing_scopes:
            names = ", ".join(facts.missing_scopes)
            hint = f"Enable {names} in {API_RESTRICTIONS}."
            if (
                FUTURES in facts.missing_scopes
                and facts.futures_missing
                and FUTURES in facts.permissions
            ):
                hint = (
                    "Futures is enabled but KuCoin refused the futures balance (400007): "
                    "open the Futures account on KuCoin, then check again."
                )
            return f"Permission missing: {names}", hint
        if status.rank <= Status.CLOCK_SKEW.rank:
            return self.rejection_words(facts, status)
        if status is Status.UNVERIFIED:
            return (
                "Saved without a passing check",
                "Run a check on this account; if it fails, follow the fix it shows.",
            )
        if status is Status.STALE:
            return self.stale_words(facts)
        if status is Status.DEGRADED:
            found_failure = transient_diagnosis(facts.latest_code, facts.latest_limited_pool)
            code = f" ({facts.latest_code})" if facts.latest_code else ""
            hint = found_failure.fix
            if found_failure is LATE_REQUEST and present(facts.latest_offset_ms):
                hint = f"{_offset_note(facts.latest_offset_ms)} {hint}"
            return f"{self.failure_title(facts, found_failure)}{code}, retrying", hint
        if status is Status.AT_RISK:
            return at_risk_words(found)
        if status is Status.NEW:
            return "Not checked yet", "Run the first check on this account."
        return HEALTHY

    def failure_title(self, facts: AccountFacts, failure: Diagnosis) -> str:
        """Return a transient failure's title; a rate limit names the pool and its reset."""
        if not facts.latest_limited_pool:
            return failure.title
        reset_at = timestamp(facts.latest_reset_at)
        when = f", resets {reset_at:%H:%M:%S} UTC" if reset_at else ""
        return f"{failure.title}: the {facts.latest_limited_pool} pool of this UID ran out{when}"

    def stale_words(self, facts: AccountFacts) -> tuple[str, str]:
        """Return (diagnosis, hint) for an account without a recent successful sync."""
        run = (
            "Run a check now. If accounts keep going stale, make sure a watcher is running: the "
            "Fleet page shows its heartbeat (`python -m lib watch`, or `make run`)."
        )
        if facts.never_checked:
            return f"Never checked since it was bound {self.bound_for(facts)} ago", run
        fix = (
            transient_diagnosis(facts.latest_code, facts.latest_limited_pool).fix
            if facts.latest_transient
            else run
        )
        last_sync_at = timestamp(facts.last_sync_at)
        if last_sync_at is None:
            return f"Never synced since it was bound {self.bound_for(facts)} ago", fix
        return f"No successful sync for {format_age(self.now - last_sync_at)}", fix

    def bound_for(self, facts: AccountFacts) -> str | None:
        """Return how long ago the account was bound ("3 h 20 min")."""
        return format_age(self.now - timestamp(facts.created_at))

    def rejection_words(self, facts: AccountFacts, status: Status) -> tuple[str, str]:
        """Return (diagnosis, hint) for a key KuCoin rejected."""
        code = facts.verdict_code
        found = code_diagnosis(code)
        title = found.title if code else "Rejected by KuCoin"
        diagnosis = f"{title} ({code})" if code else title
        hint = found.fix
        if status is Status.IP_BLOCKED and facts.seen_ip:
            diagnosis = f"{title}: KuCoin saw {facts.seen_ip} ({code})"
            hint = f"In {IP_RESTRICTION}, add {facts.seen_ip} (the IP KuCoin saw)."
        elif status is Status.SCOPE_MISSING:
            permission = _endpoint_permission(facts.verdict_endpoint)
            if permission:
                diagnosis = f"{title}: {permission} ({code})"
                hint = f"Enable {permission} in {API_RESTRICTIONS}."
        elif status is Status.CLOCK_SKEW and present(facts.verdict_offset_ms):
            # Only while the clocks disagree: a 400002 with agreeing clocks is transient.
            hint = f"{_offset_note(facts.verdict_offset_ms)} {hint}"
        elif status is Status.KEY_UNKNOWN:
            expires_at = timestamp(facts.expires_at)
            if expires_at is not None and expires_at <= self.now:
                since = expires_at - self.policy.inactivity_rule
                hint = (
                    f"It was trade-enabled without an IP whitelist and unused since "
                    f"{since:%Y-%m-%d}: KuCoin's {self.policy.inactivity_rule.days}-day rule has "
                    f"likely deleted it. {hint}"
                )
        return diagnosis, hint


def _offset_note(clock_offset_ms: int) -> str:
    """Return the measured clock offset as a sentence."""
    return f"Measured offset: {clock_offset_ms / 1000:+.1f} s (KuCoin minus this machine)."


def at_risk_words(found: Sequence[Risk]) -> tuple[str, str]:
    """Return (diagnosis, hint) of a working account that runs these risks, gravest first."""
    return f"Works, but: {'; '.join(r.what for r in found)}", _fixes(found)


def _fixes(found: Sequence[Risk]) -> str:
    """Return the fixes of several risks as one hint, gravest first, numbered when several."""
    if len(found) == 1:
        return found[0].fix
    return " ".join([f"{i}) {risk.fix}" for i, risk in enumerate(found, start=1)])


def _endpoint_permission(path: str | None) -> str | None:
    """Return the permission KuCoin requires for an endpoint's path."""
    for endpoint in ENDPOINTS.values():
        if endpoint.path == path:
            return endpoint.permission
    return None


# --- A check's verdict, as binding and `check` report it --------------------------------


def key_warnings(assessment: CheckAssessment) -> tuple[str, ...]:
    """Return what the operator should confirm about a working key, gravest first."""
    # The health rules' own findings, so that nothing binds quietly that the Fleet flags a
    # second later: what the account cannot do (SCOPE_MISSING), then every risk.
    found = [f"{assessment.diagnosis}. {assessment.hint}"] if assessment.status.failing else []
    found.extend(f"{risk.what[:1].upper()}{risk.what[1:]}. {risk.fix}" for risk in assessment.risks)
    return tuple(found)


def api_status(result: ProbeResult, assessment: CheckAssessment) -> str:
    """Return a check's verdict as the reports say it, after "API Status: "."""
    if not result.ok:
        failure = assessment.failure
        title = failure.title if failure is not None else "Rejected by KuCoin"
        return f"Failed: {title}{f' ({result.code})' if result.code else ''}"
    if assessment.status.failing:
        # KuCoin accepts the key, yet the Fleet will show it red: say both.
        return f"Connected, but this key cannot do what the account needs: {assessment.diagnosis}"
    return "Connected"

"""The operator's settings as the health rules apply them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lib.console.settings import policy_from_settings
from lib.store.models import Settings


def test_the_policy_is_the_stored_settings_when_they_are_in_range() -> None:
    policy = policy_from_settings(
        Settings(
            egress_ips=("203.0.113.154",),
            freshness_seconds=90,
            freshness_grace_seconds=0,
            rotation_age_days=30,
        )
    )

    assert policy.egress_ips == ("203.0.113.154",)
    assert policy.freshness_period == timedelta(seconds=90)
    assert policy.freshness_grace == timedelta(0)
    assert policy.rotation_age == timedelta(days=30)


@pytest.mark.parametrize(
    ("stored", "period", "grace", "rotation"),
    [
        pytest.param(
            {"rotation_age_days": 10_000_000_000},
            timedelta(hours=1),
            timedelta(minutes=15),
            timedelta(days=3_650),
            id="rotation-too-long-for-a-timedelta",
        ),
        pytest.param(
            {"freshness_seconds": -300, "freshness_grace_seconds": -60},
            timedelta(minutes=1),
            timedelta(0),
            timedelta(days=90),
            id="negative-minutes",
        ),
        pytest.param(
            {"freshness_seconds": 10**30, "freshness_grace_seconds": 10**30},
            timedelta(days=7),
            timedelta(days=1),
            timedelta(days=90),
            id="beyond-every-range",
        ),
        pytest.param(
            {"freshness_seconds": "hourly", "rotation_age_days": None},
            timedelta(hours=1),
            timedelta(minutes=15),
            timedelta(days=90),
            id="not-a-number-means-the-default",
        ),
    ],
)
def test_a_stored_value_out_of_range_is_held_to_its_range(
    stored: dict[str, object], period: timedelta, grace: timedelta, rotation: timedelta
) -> None:
    policy = policy_from_settings(Settings(**stored))  # type: ignore[arg-type]

    assert (policy.freshness_period, policy.freshness_grace, policy.rotation_age) == (
        period,
        grace,
        rotation,
    )

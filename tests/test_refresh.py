"""Fleet refresh over real HTTP: concurrent, one public call per run, paced by KuCoin's quotas."""

from __future__ import annotations

import dataclasses
import time

from app_fixtures import RecordingSimulator

from lib.console.kucoin import KucoinTarget
from lib.console.refresh import RefreshTarget, refresh
from lib.kucoin.auth import Credentials
from lib.kucoin.probe_result import Outcome
from lib.kucoin.sim import SimAccount, SimulatorServer


class CountingSimulator(RecordingSimulator):
    """Also counts the answers that were 429 (rate limited)."""

    def handle(self, request):
        response = super().handle(request)
        self.refused = getattr(self, "refused", 0) + (response.status == 429)
        return response


TEMPLATE = SimAccount(
    api_key="000000000000000000000000",
    api_secret="00000000-0000-4000-8000-000000000000",
    passphrase="pass",
    uid=1,
    permissions=("General", "Spot"),
    ip_whitelist=("127.0.0.1",),
)


def accounts(count: int, uids: int) -> list[SimAccount]:
    """Return `count` keys spread over `uids` UIDs."""
    return [
        dataclasses.replace(
            TEMPLATE,
            api_key=f"{n:024x}",
            api_secret=f"00000000-0000-4000-8000-{n:012x}",
            passphrase=f"pass-{n}",
            uid=100 + n % uids,
        )
        for n in range(1, count + 1)
    ]


def targets(keys: list[SimAccount], *, with_uid: bool) -> list[RefreshTarget]:
    return [
        RefreshTarget(
            n,
            lambda a=a: Credentials(a.api_key, a.api_secret.reveal(), a.passphrase.reveal()),
            str(a.uid) if with_uid else None,
        )
        for n, a in enumerate(keys)
    ]


def run(sim, keys, *, with_uid: bool, concurrency: int = 8):
    with SimulatorServer(sim) as server:
        started = time.monotonic()
        results = refresh(
            targets(keys, with_uid=with_uid),
            kucoin=KucoinTarget(server.spot_url, server.futures_url),
            concurrency=concurrency,
        )
        return results, time.monotonic() - started


def test_many_keys_are_checked_concurrently_with_one_public_call():
    keys = accounts(24, uids=24)
    sim = RecordingSimulator(keys, faults=None)
    sim.set_latency(150)
    results, elapsed = run(sim, keys, with_uid=False, concurrency=8)
    assert all(r.outcome is Outcome.OK for r in results.values())
    assert len(results) == 24
    # 24 probes of >= 2 calls at 150 ms each would take >= 7 s one after another.
    assert elapsed < 4.0
    # The per-IP public pool is spent once per run, not once per key.
    assert sim.paths.count("/api/v1/timestamp") == 1


def test_known_uids_are_paced_so_kucoin_never_answers_429000():
    keys = accounts(8, uids=2)  # 4 keys share each UID's Management pool
    sim = CountingSimulator(keys, quotas={"Management": 60}, window_ms=1_000)
    results, elapsed = run(sim, keys, with_uid=True)
    assert getattr(sim, "refused", 0) == 0
    assert all(r.outcome is Outcome.OK for r in results.values()), [
        r.code for r in results.values()
    ]
    # Two probes (25 weight each) fit a window: the pacing waited for resets instead.
    assert elapsed >= 0.9
    assert all(r.code != "429000" for r in results.values())


def test_unknown_uids_recover_from_429000_after_the_announced_reset():
    keys = accounts(6, uids=1)
    sim = RecordingSimulator(keys, quotas={"Management": 60}, window_ms=800)
    results, _ = run(sim, keys, with_uid=False)
    assert [r.outcome for r in results.values()] == [Outcome.OK] * 6

"""The probe: one live check of a key, the function bind, refresh and `check` all use."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lib.kucoin import constants as k
from lib.kucoin.auth import Credentials
from lib.kucoin.client import AsyncKucoinClient, KucoinClient
from lib.kucoin.diagnosis import DEADLINE_CODE, RATE_LIMIT_CODE
from lib.kucoin.errors import KucoinAPIError, KucoinError
from lib.kucoin.probe_result import Outcome, ProbeResult, SpotBalance

DEFAULT_FUTURES_CURRENCIES = ("USDT",)


def _decimal(value: Any) -> Decimal:
    """Return a Decimal from KuCoin's string or number; malformed values become 0."""
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def plain_ip(value: Any) -> str | None:
    """Return value if it is a full IP address (my-ip may be masked), else None."""
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


def _permissions(info: dict[str, Any]) -> tuple[str, ...]:
    """Return key info's comma-separated permission string as a tuple of names."""
    raw = info.get("permission") or ""
    return tuple(p.strip() for p in str(raw).split(",") if p.strip())


def _ms_to_datetime(value: Any) -> datetime | None:
    """Return a UTC datetime from KuCoin's milliseconds, or None."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _pool_of(path: str | None) -> str | None:
    """Return the rate-limit pool an endpoint's path is charged to."""
    return next((e.pool for e in k.ENDPOINTS.values() if e.path == path), None)


def _failure(error: KucoinError) -> dict[str, Any]:
    """Return the ProbeResult fields describing a failed call."""
    definitive = isinstance(error, KucoinAPIError) and not error.transient
    fields: dict[str, Any] = {
        "outcome": Outcome.REJECTED if definitive else Outcome.UNREACHABLE,
        "code": error.code,
        "message": error.message,
        "http_status": error.http_status,
        "endpoint": error.endpoint,
    }
    if error.code == RATE_LIMIT_CODE and error.rate_limit.present:
        # A pool ran out (not an overload, which carries no figures): say which, and when.
        fields.update(
            rate_limited_pool=_pool_of(error.endpoint),
            rate_limit_reset_ms=error.rate_limit.reset_ms,
        )
    return fields


def _deadline_failure(deadline_s: float) -> dict[str, Any]:
    """Return the ProbeResult fields of a check that did not finish within its deadline."""
    return {
        "outcome": Outcome.UNREACHABLE,
        "code": DEADLINE_CODE,
        "message": f"the check did not finish within its {deadline_s:g} s deadline",
    }


async def _together(*calls: Awaitable[Any]) -> list[Any]:
    """Return each call's result or its KucoinError, running them at once."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, KucoinError):
            raise result
    return results


async def probe_async(
    client: AsyncKucoinClient,
    *,
    futures_currencies: Sequence[str] = DEFAULT_FUTURES_CURRENCIES,
    include_user_info: bool = False,
    want_futures: bool = False,
    measure: bool = True,
    deadline_s: float | None = None,
) -> ProbeResult:
    """Check the client's key live in two waves, within `deadline_s` seconds (None: no limit).

    Wave one measures KuCoin's clock and the IP it sees, together; with `measure=False` the
    offset and IP the client already holds are reused (a fleet refresh spends the per-IP
    public quota once, not once per key). Wave two reads key info, the spot accounts and, with
    `want_futures`, the futures overview, together. `want_futures` is for an account that
    needs Futures, a key last known to have it, or a first check: a refusal (400007) then shows
    as a missing Futures permission. A key whose info lists Futures unasked gets a third wave.
    """
    started = time.monotonic()
    checked_at = datetime.now(UTC)
    fields: dict[str, Any] = {"seen_ip": client.seen_ip}
    try:
        async with asyncio.timeout(deadline_s):
            if measure or client.clock_offset_ms is None:
                fields.update(await _measure(client))
            if "outcome" not in fields:
                fields.update(
                    await _read_key(client, futures_currencies, include_user_info, want_futures)
                )
    except TimeoutError:
        assert deadline_s is not None
        fields.update(_deadline_failure(deadline_s))
    management = client.rate_limits.get("Management")
    return ProbeResult(
        checked_at=checked_at,
        latency_ms=round((time.monotonic() - started) * 1000),
        clock_offset_ms=client.clock_offset_ms,
        rate_limit_remaining=management.remaining if management else None,
        **fields,
    )


async def _measure(client: AsyncKucoinClient) -> dict[str, Any]:
    """Return the egress IP KuCoin sees, measuring the clock offset at the same time."""
    offset, ip = await _together(client.sync_clock(), client.my_ip())
    for result in (offset, ip):
        if isinstance(result, KucoinError):
            return _failure(result)
    client.seen_ip = plain_ip(ip)
    return {"seen_ip": client.seen_ip}


async def _read_key(
    client: AsyncKucoinClient,
    futures_currencies: Sequence[str],
    include_user_info: bool,
    want_futures: bool,
) -> dict[str, Any]:
    """Return the ProbeResult fields read with the key: key info, accounts, futures at once."""
    calls: list[Awaitable[Any]] = [client.api_key_info(), client.accounts()]
    if include_user_info:
        calls.append(client.user_info())
    futures_calls = [client.futures_overview(c) for c in futures_currencies] if want_futures else []
    info, rows, *rest = await _together(*calls, *futures_calls)
    user, overviews = (rest[0], rest[1:]) if include_user_info else (None, rest)
    # Key info speaks first: its refusal is the key's verdict; then the accounts, then the rest.
    for result in (info, rows, user):
        if isinstance(result, KucoinError):
            failed = _failure(result)
            if result.client_ip:
                failed["seen_ip"] = result.client_ip
            return failed
    permissions = _permissions(info)
    fields: dict[str, Any] = {
        "outcome": Outcome.OK,
        "permissions": permissions,
        "ip_whitelist": (info.get("ipWhitelist") or None),
        "is_master": info.get("isMaster"),
        "sub_name": info.get("subName") or None,
        "uid": str(info["uid"]) if info.get("uid") is not None else None,
        "remark": info.get("remark"),
        "api_version": info.get("apiVersion"),
        "key_created_at": _ms_to_datetime(info.get("createdAt")),
        "spot_balances": tuple(
            SpotBalance(
                account_type=str(row.get("type", "")),
                currency=str(row.get("currency", "")),
                balance=_decimal(row.get("balance")),
                available=_decimal(row.get("available")),
                holds=_decimal(row.get("holds")),
            )
            for row in rows or ()
        ),
    }
    if include_user_info:
        fields["vip_level"] = user.get("level")
    if not want_futures and k.FUTURES in permissions:
        # The key gained Futures since it was last seen: read what it can read now.
        overviews = await _together(*(client.futures_overview(c) for c in futures_currencies))
    if want_futures or k.FUTURES in permissions:
        futures, missing, note = _futures(futures_currencies, overviews)
        fields.update(futures=futures, futures_permission_missing=missing)
        if note:
            fields["message"] = note
    return fields


def _futures(
    currencies: Sequence[str], answers: Sequence[Any]
) -> tuple[dict[str, dict[str, Decimal]], bool, str | None]:
    """Return futures overviews per currency, whether Futures was refused (400007), and a note."""
    overviews: dict[str, dict[str, Decimal]] = {}
    for currency, data in zip(currencies, answers, strict=True):
        if isinstance(data, KucoinAPIError) and data.code == "400007":
            # The futures API refuses this key: a missing Futures permission, not a failed
            # key (the spot reads beside it proved the key works).
            return {}, True, None
        if isinstance(data, KucoinError):
            return overviews, False, f"futures overview unavailable: {data}"
        overviews[currency] = {
            key: value for key, value in (data or {}).items() if isinstance(value, Decimal)
        }
    return overviews, False, None


def probe(
    credentials: Credentials,
    *,
    spot_url: str = k.SPOT_URL,
    futures_url: str = k.FUTURES_URL,
    futures_currencies: Sequence[str] = DEFAULT_FUTURES_CURRENCIES,
    include_user_info: bool = False,
    want_futures: bool = False,
    deadline_s: float | None = k.CHECK_DEADLINE_S,
    **client_kwargs: Any,
) -> ProbeResult:
    """Check one key live from synchronous code and return what was observed."""
    with KucoinClient(
        credentials, spot_url=spot_url, futures_url=futures_url, **client_kwargs
    ) as client:
        return client.run(
            probe_async(
                client.async_client,
                futures_currencies=futures_currencies,
                include_user_info=include_user_info,
                want_futures=want_futures,
                deadline_s=deadline_s,
            )
        )

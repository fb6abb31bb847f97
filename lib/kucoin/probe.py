"""The probe: one live check of a key, the function bind, refresh and `check` all use."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lib.kucoin import constants as k
from lib.kucoin.auth import Credentials
from lib.kucoin.client import AsyncKucoinClient, KucoinClient
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


def _failure(error: KucoinError) -> dict[str, Any]:
    """Return the ProbeResult fields describing a failed call."""
    definitive = isinstance(error, KucoinAPIError) and not error.transient
    return {
        "outcome": Outcome.REJECTED if definitive else Outcome.UNREACHABLE,
        "code": error.code,
        "message": error.message,
        "http_status": error.http_status,
        "endpoint": error.endpoint,
    }


async def probe_async(
    client: AsyncKucoinClient,
    *,
    futures_currencies: Sequence[str] = DEFAULT_FUTURES_CURRENCIES,
    include_user_info: bool = False,
    want_futures: bool = False,
    measure: bool = True,
) -> ProbeResult:
    """Check the client's key live: server time, key info, spot accounts, futures if allowed.

    `want_futures` reads the futures overview even when key info does not list Futures (the
    account needs it), so a refusal shows as a missing Futures permission.
    With `measure=False` the clock offset and egress IP the client already holds are reused,
    so a fleet refresh spends the per-IP public quota once, not once per key.
    """
    started = time.monotonic()
    checked_at = datetime.now(UTC)
    fields: dict[str, Any] = {"seen_ip": client.seen_ip}
    try:
        if measure or client.clock_offset_ms is None:
            await client.sync_clock()
            fields["seen_ip"] = client.seen_ip = plain_ip(await client.my_ip())
    except KucoinError as error:
        fields.update(_failure(error))
    if "outcome" not in fields:
        try:
            fields.update(
                await _read_key(client, futures_currencies, include_user_info, want_futures)
            )
            fields["outcome"] = Outcome.OK
        except KucoinError as error:
            fields.update(_failure(error))
            if error.client_ip:
                fields["seen_ip"] = error.client_ip
    management = client.rate_limits.get("Management")
    return ProbeResult(
        checked_at=checked_at,
        latency_ms=round((time.monotonic() - started) * 1000),
        clock_offset_ms=client.clock_offset_ms,
        rate_limit_remaining=management.remaining if management else None,
        **fields,
    )


async def _read_key(
    client: AsyncKucoinClient,
    futures_currencies: Sequence[str],
    include_user_info: bool,
    want_futures: bool,
) -> dict[str, Any]:
    """Return the ProbeResult fields read with the key; raise KucoinError on a failed call."""
    info = await client.api_key_info()
    permissions = _permissions(info)
    fields: dict[str, Any] = {
        "permissions": permissions,
        "ip_whitelist": (info.get("ipWhitelist") or None),
        "is_master": info.get("isMaster"),
        "sub_name": info.get("subName") or None,
        "uid": str(info["uid"]) if info.get("uid") is not None else None,
        "remark": info.get("remark"),
        "api_version": info.get("apiVersion"),
        "key_created_at": _ms_to_datetime(info.get("createdAt")),
    }
    rows = await client.accounts()
    fields["spot_balances"] = tuple(
        SpotBalance(
            account_type=str(row.get("type", "")),
            currency=str(row.get("currency", "")),
            balance=_decimal(row.get("balance")),
            available=_decimal(row.get("available")),
            holds=_decimal(row.get("holds")),
        )
        for row in rows or ()
    )
    if include_user_info:
        fields["vip_level"] = (await client.user_info()).get("level")
    if want_futures or k.FUTURES in permissions:
        futures, missing, note = await _read_futures(client, futures_currencies)
        fields.update(futures=futures, futures_permission_missing=missing)
        if note:
            fields["message"] = note
    return fields


async def _read_futures(
    client: AsyncKucoinClient, currencies: Sequence[str]
) -> tuple[dict[str, dict[str, Decimal]], bool, str | None]:
    """Return futures overviews per currency, whether Futures was refused (400007), and a note."""
    overviews: dict[str, dict[str, Decimal]] = {}
    for currency in currencies:
        try:
            data = await client.futures_overview(currency)
        except KucoinAPIError as error:
            if error.code == "400007":
                # The futures API refuses this key: a missing Futures permission, not a
                # failed key (the spot reads above already proved the key works).
                return overviews, True, None
            return overviews, False, f"futures overview unavailable: {error}"
        except KucoinError as error:
            return overviews, False, f"futures overview unavailable: {error}"
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
            )
        )

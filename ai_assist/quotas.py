"""Quotas, checked before a provider is called.

- Burst: requests per user per minute, an atomic Redis `INCR` on a per-minute key (sent in the same round trip as
  the circuit breaker's admission, ai_assist/breaker.py).
- Daily token cap and cost ceiling (per day or month, by role): one counter document per user in `aiQuotaCounters`
  holding `tokens.d<YYYYMMDD>` and `cost.<d<YYYYMMDD>|m<YYYYMM>>`. The worst-case usage of a call is reserved by ONE
  conditional `$inc` whose filter says "there is still room for this reservation"; MongoDB applies a
  single-document update atomically, so of many concurrent callers exactly as many succeed as the budget allows.
  After the call the reservation is settled with the real usage (a second `$inc` of the difference).
Period keys come from `timezone.now()`, so counters start from zero on the day (or month) boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from pymongo.errors import DuplicateKeyError

from report_platform.errors import DomainError

COLLECTION = "aiQuotaCounters"


class AiQuotaExceeded(DomainError):
    code = "ai_quota_exceeded"
    status = 429
    default_message = "Your AI quota is used up."


@dataclass
class Limits:
    daily_tokens: int
    cost_ceiling_usd: float
    cost_period: str  # "day" | "month"
    burst_per_minute: int


@dataclass
class Reservation:
    key: str
    token_field: str
    cost_field: str
    tokens: int
    cost: float


def limits_for(role: str) -> Limits:
    quotas = settings.AI_QUOTAS
    config = quotas.get(role) or quotas.get("viewer") or next(iter(quotas.values()))
    return Limits(
        daily_tokens=int(config["daily_tokens"]),
        cost_ceiling_usd=float(config["cost_ceiling_usd"]),
        cost_period=config.get("cost_period", "day"),
        burst_per_minute=int(config["burst_per_minute"]),
    )


def _next_day(now: datetime) -> datetime:
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _next_month(now: datetime) -> datetime:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def _period_fields(limits: Limits, now: datetime) -> tuple[str, str, datetime]:
    token_field = f"tokens.d{now:%Y%m%d}"
    if limits.cost_period == "month":
        return token_field, f"cost.m{now:%Y%m}", _next_month(now)
    return token_field, f"cost.d{now:%Y%m%d}", _next_day(now)


def _refuse(*, limit: str, message: str, resets_at: datetime, limit_value, used) -> AiQuotaExceeded:
    return AiQuotaExceeded(
        f"{message} It resets at {resets_at:%Y-%m-%d %H:%M} UTC.",
        extra={"limit": limit, "limit_value": limit_value, "used": used, "resets_at": resets_at.isoformat()},
    )


def burst_key(*, user_id: str, now: datetime | None = None) -> str:
    """The Redis counter of this user's requests in the current minute."""
    now = now or timezone.now()
    return f"burst:{user_id}:{now:%Y%m%d%H%M}"


def burst_check(*, count: int, limits: Limits, now: datetime | None = None) -> None:
    """Refuse when `count` (this request included) is over the burst limit."""
    if count > limits.burst_per_minute:
        now = now or timezone.now()
        resets_at = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        raise _refuse(
            limit="burst_per_minute",
            message=f"Too many AI requests: at most {limits.burst_per_minute} a minute.",
            resets_at=resets_at,
            limit_value=limits.burst_per_minute,
            used=count - 1,
        )


def _counters():
    return connection.database[COLLECTION]


def quota_reserve(*, user_id: str, limits: Limits, tokens: int, cost: float, now: datetime | None = None):
    """Atomically reserve `tokens` and `cost` for one call, or raise AiQuotaExceeded (nothing reserved)."""
    now = now or timezone.now()
    token_field, cost_field, cost_resets = _period_fields(limits, now)
    day_resets = _next_day(now)
    if tokens > limits.daily_tokens:
        raise _refuse(
            limit="daily_tokens",
            message=f"This request needs up to {tokens} tokens, more than your daily cap of {limits.daily_tokens}.",
            resets_at=day_resets,
            limit_value=limits.daily_tokens,
            used=0,
        )
    if cost > limits.cost_ceiling_usd:
        raise _refuse(
            limit="cost_ceiling",
            message=(
                f"This request may cost up to ${cost:.4f}, more than your ceiling of "
                f"${limits.cost_ceiling_usd:.2f} per {limits.cost_period}."
            ),
            resets_at=cost_resets,
            limit_value=limits.cost_ceiling_usd,
            used=0,
        )
    key = f"user:{user_id}"
    collection = _counters()
    guard = {
        "key": key,
        token_field: {"$not": {"$gt": limits.daily_tokens - tokens}},
        cost_field: {"$not": {"$gt": round(limits.cost_ceiling_usd - cost, 9)}},
    }
    update = {"$inc": {token_field: tokens, cost_field: cost}, "$set": {"updated_at": now}}
    for _ in range(2):
        if collection.update_one(guard, update).matched_count == 1:
            return Reservation(key=key, token_field=token_field, cost_field=cost_field, tokens=tokens, cost=cost)
        document = collection.find_one({"key": key})
        if document is not None:
            break
        try:
            collection.insert_one({"key": key, "tokens": {}, "cost": {}, "updated_at": now})
        except DuplicateKeyError:
            pass  # a concurrent first call created it
    else:
        document = collection.find_one({"key": key}) or {}
    used_tokens = int(document.get("tokens", {}).get(token_field.split(".", 1)[1], 0))
    used_cost = float(document.get("cost", {}).get(cost_field.split(".", 1)[1], 0.0))
    if used_tokens + tokens > limits.daily_tokens:
        raise _refuse(
            limit="daily_tokens",
            message=f"Daily AI token cap reached ({used_tokens} of {limits.daily_tokens} tokens used).",
            resets_at=day_resets,
            limit_value=limits.daily_tokens,
            used=used_tokens,
        )
    raise _refuse(
        limit="cost_ceiling",
        message=(
            f"AI cost ceiling reached (${used_cost:.4f} of ${limits.cost_ceiling_usd:.2f} "
            f"per {limits.cost_period} used)."
        ),
        resets_at=cost_resets,
        limit_value=limits.cost_ceiling_usd,
        used=round(used_cost, 6),
    )


def quota_settle(*, reservation: Reservation, tokens: int, cost: float) -> None:
    """Replace the reserved worst case by the real usage."""
    delta_tokens = tokens - reservation.tokens
    delta_cost = round(cost - reservation.cost, 9)
    if delta_tokens == 0 and delta_cost == 0:
        return
    _counters().update_one(
        {"key": reservation.key},
        {"$inc": {reservation.token_field: delta_tokens, reservation.cost_field: delta_cost}},
    )


def quota_usage(*, user_id: str, role: str, now: datetime | None = None) -> dict:
    """What a user has used in the current periods, with the limits and reset times."""
    now = now or timezone.now()
    limits = limits_for(role)
    token_field, cost_field, cost_resets = _period_fields(limits, now)
    document = _counters().find_one({"key": f"user:{user_id}"}) or {}
    return {
        "tokens_used": int(document.get("tokens", {}).get(token_field.split(".", 1)[1], 0)),
        "daily_tokens": limits.daily_tokens,
        "tokens_reset_at": _next_day(now).isoformat(),
        "cost_used_usd": round(float(document.get("cost", {}).get(cost_field.split(".", 1)[1], 0.0)), 6),
        "cost_ceiling_usd": limits.cost_ceiling_usd,
        "cost_period": limits.cost_period,
        "cost_reset_at": cost_resets.isoformat(),
        "burst_per_minute": limits.burst_per_minute,
    }

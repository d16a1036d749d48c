"""Quotas, checked before a provider is called, in the shared Redis: deciding a call costs one round trip.

`admit` runs one Lua script (Redis runs a script alone, so it is atomic across every web and worker process):
  circuit breaker admission (states of ai_assist/breaker.py) -> burst: requests per user per minute
  -> daily token cap and cost ceiling (per day or month, by role)
  -> every pooled budget the call counts against (role, RC, task template; ai_assist/budgets.py):
the call's worst case is reserved on the user's counters and on every budget counter only if it fits them all.
Of many concurrent callers exactly as many get through as the budget allows. After the call the reservation is
settled with the real usage (`settle_on`, queued on the caller's pipeline with the breaker record and the usage row).

Counters: `rp:ai:quota:<user>:t:d<YYYYMMDD>` (tokens) and `rp:ai:quota:<user>:c:<d<YYYYMMDD>|m<YYYYMM>>` (cost in
integer nano-dollars: exact, and INCRBYFLOAT crashed the embedded redis-server 6.2.14). They expire two days after
their period. A missing counter (a new period, or Redis lost its data) is seeded from `aiUsageLogs`, the sum of the
period's rows, before the call is decided: a Redis restart never hands out a fresh budget.
Period keys come from `timezone.now()`, so counters start from zero on the day (or month) boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from bson import ObjectId
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from ai_assist import breaker, post_call, redis_store
from ai_assist import budgets as budgets_module
from ai_assist.pricing import nano_to_usd_text
from report_platform.errors import DomainError

NANO = 1_000_000_000

# KEYS: breaker state hash, burst counter, token counter, cost counter, then one counter per budget.
# ARGV: now, cooldown, burst ttl, burst limit, tokens reserved, token cap, cost reserved (nano), cost cap (nano),
# then one cap (nano) per budget.
# Returns {verdict, burst count, tokens used, cost used}; verdict closed | probe (admitted) | open | burst | tokens |
# cost (refused, nothing reserved) | seed (a counter is missing: nothing counted, seed it and ask again); for a
# budget refusal {'budget', burst count, index of the budget (1-based), its spend}.
_ADMIT = (
    breaker.ADMIT_LUA
    + """
local function refuse(reason, count, tokens, cost)
  if verdict == 'probe' then redis.call('HSET', KEYS[1], 'probe_at', '0') end
  return {reason, count, tokens, cost}
end
if verdict == 'open' then return {'open', 0, 0, 0} end
local tokens = redis.call('GET', KEYS[3])
local cost = redis.call('GET', KEYS[4])
if not tokens or not cost then return refuse('seed', 0, 0, 0) end
local budgets = {}
for i = 5, #KEYS do
  local spent = redis.call('GET', KEYS[i])
  if not spent then return refuse('seed', 0, 0, 0) end
  budgets[i] = tonumber(spent)
end
redis.call('SET', KEYS[2], 0, 'EX', tonumber(ARGV[3]), 'NX')
local count = redis.call('INCR', KEYS[2])
if count > tonumber(ARGV[4]) then return refuse('burst', count, 0, 0) end
tokens = tonumber(tokens)
cost = tonumber(cost)
if tokens + tonumber(ARGV[5]) > tonumber(ARGV[6]) then return refuse('tokens', count, tokens, cost) end
if cost + tonumber(ARGV[7]) > tonumber(ARGV[8]) then return refuse('cost', count, tokens, cost) end
for i = 5, #KEYS do
  if budgets[i] + tonumber(ARGV[7]) > tonumber(ARGV[i + 4]) then return refuse('budget', count, i - 4, budgets[i]) end
end
redis.call('INCRBY', KEYS[3], ARGV[5])
for i = 4, #KEYS do redis.call('INCRBY', KEYS[i], ARGV[7]) end
return {verdict, count, tokens, cost}
"""
)

# KEYS: token counter, cost counter, then the budget counters. ARGV: token delta, cost delta (nano). A counter that
# vanished meanwhile is left alone (it is re-seeded from the logs, which include this call) rather than recreated
# with a negative value. Returns each budget counter's spend after the settlement (-1: the counter is gone).
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
local spent = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local value = redis.call('INCRBY', KEYS[i], ARGV[2])
    if i > 2 then spent[#spent + 1] = value end
  elseif i > 2 then
    spent[#spent + 1] = -1
  end
end
return spent
"""


class AiQuotaExceeded(DomainError):
    code = "ai_quota_exceeded"
    status = 429
    default_message = "Your AI quota is used up."


class AiBudgetExceeded(AiQuotaExceeded):
    """A pooled budget (role, RC or task template) has no room for the call. `extra` says which, what is left and
    when it resets."""

    code = "ai_budget_exceeded"
    default_message = "An AI budget is used up."


@dataclass
class Limits:
    daily_tokens: int
    cost_ceiling_usd: float
    cost_period: str  # "day" | "month"
    burst_per_minute: int


@dataclass
class Reservation:
    token_key: str
    cost_key: str
    tokens: int
    cost_nano: int
    budgets: list[budgets_module.Budget] = field(default_factory=list)
    budget_keys: list[str] = field(default_factory=list)
    at: datetime | None = None


@dataclass
class Admission:
    verdict: str  # "closed" | "probe" (this call is the half-open probe) | "open" (fail fast)
    reservation: Reservation | None = None


def limits_for(role: str) -> Limits:
    quotas = settings.AI_QUOTAS
    config = quotas.get(role) or quotas.get("viewer") or next(iter(quotas.values()))
    return Limits(
        daily_tokens=int(config["daily_tokens"]),
        cost_ceiling_usd=float(config["cost_ceiling_usd"]),
        cost_period=config.get("cost_period", "day"),
        burst_per_minute=int(config["burst_per_minute"]),
    )


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _next_day(now: datetime) -> datetime:
    return _day_start(now + timedelta(days=1))


def _month_start(now: datetime) -> datetime:
    return _day_start(now).replace(day=1)


def _next_month(now: datetime) -> datetime:
    return (_month_start(now) + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class _Periods:
    token_key: str
    cost_key: str
    day_start: datetime
    day_resets: datetime
    cost_start: datetime
    cost_resets: datetime


def _periods(user_id: str, limits: Limits, now: datetime) -> _Periods:
    return _periods_of_day(user_id, limits.cost_period, _day_start(now))


@lru_cache(maxsize=1024)
def _periods_of_day(user_id: str, cost_period: str, day_start: datetime) -> _Periods:
    """The user's counters and their bounds on that day (kept: every call of the day asks for the same)."""
    prefix = f"quota:{user_id}"
    day_resets = _next_day(day_start)
    if cost_period == "month":
        cost_key = f"{prefix}:c:m{day_start:%Y%m}"
        cost_start, cost_resets = _month_start(day_start), _next_month(day_start)
    else:
        cost_key, cost_start, cost_resets = f"{prefix}:c:d{day_start:%Y%m%d}", day_start, day_resets
    return _Periods(
        token_key=redis_store.key(f"{prefix}:t:d{day_start:%Y%m%d}"),
        cost_key=redis_store.key(cost_key),
        day_start=day_start,
        day_resets=day_resets,
        cost_start=cost_start,
        cost_resets=cost_resets,
    )


def _refuse(*, limit: str, message: str, resets_at: datetime, limit_value, used) -> AiQuotaExceeded:
    return AiQuotaExceeded(
        f"{message} It resets at {resets_at:%Y-%m-%d %H:%M} UTC.",
        extra={"limit": limit, "limit_value": limit_value, "used": used, "resets_at": resets_at.isoformat()},
    )


def _used_since(user_id: str, since: datetime, **sums: Sum) -> dict:
    from ai_assist.models import AiUsageLog

    user_pk = ObjectId(user_id) if ObjectId.is_valid(user_id) else user_id
    totals = AiUsageLog.objects.filter(user_id=user_pk, created_at__gte=since).aggregate(**sums)
    return {name: value or 0 for name, value in totals.items()}


def _seed(
    user_id: str, periods: _Periods, now: datetime, budgets: list[budgets_module.Budget], budget_keys: list[str]
) -> None:
    """Create missing counters from the period's usage logs (NX: a concurrent seeder's value wins, it is the same).
    Only the counters that are missing are computed (a budget's sum scans its period's rows)."""
    client = redis_store.client()
    present = client.mget([periods.token_key, periods.cost_key, *budget_keys])
    pipe = client.pipeline(transaction=False)
    if present[0] is None or present[1] is None:
        tokens, cost = Sum("total_tokens"), Sum("cost_nano")
        if periods.cost_start == periods.day_start:
            used = _used_since(user_id, periods.day_start, tokens=tokens, cost=cost)  # one query for a daily ceiling
        else:
            used = _used_since(user_id, periods.day_start, tokens=tokens) | _used_since(
                user_id, periods.cost_start, cost=cost
            )
        for key, value, ends in (
            (periods.token_key, int(used["tokens"]), periods.day_resets),
            (periods.cost_key, int(used["cost"]), periods.cost_resets),
        ):
            # Relative expiry (EX, not EXPIREAT): tests move `timezone.now()`, Redis keeps the real clock.
            pipe.set(key, value, nx=True, ex=budgets_module.expiry_seconds(ends, now))
    for budget, value in zip(budgets, present[2:], strict=True):
        if value is None:
            budgets_module.seed_on(pipe, budget, budgets_module.budget_period(budget, now), now)
    pipe.execute()


def _budget_refusal(budget: budgets_module.Budget, *, spent: int, cost_nano: int, now: datetime) -> AiBudgetExceeded:
    period = budgets_module.budget_period(budget, now)
    scope = budgets_module.SCOPE_LABELS.get(budget.scope, budget.scope)
    left = max(0, budget.limit_nano - spent)
    what = f"this request may cost up to {budgets_module.usd_display(cost_nano)}"
    if cost_nano > budget.limit_nano:
        what += ", more than the whole budget"
    resets = f" It resets at {period.resets_at:%Y-%m-%d %H:%M} UTC." if period.resets_at else " It does not reset."
    return AiBudgetExceeded(
        f'The AI {scope} budget "{budget.name}" has '
        f"{budgets_module.describe_left(budget, used_nano=spent)}; {what}.{resets}",
        extra={
            "limit": "budget",
            "budget": budget.name,
            "budget_scope": budget.scope,
            "budget_target": budget.target,
            "budget_period": budget.period,
            "limit_usd": nano_to_usd_text(budget.limit_nano),
            "used_usd": nano_to_usd_text(min(spent, budget.limit_nano)),
            "left_usd": nano_to_usd_text(left),
            "resets_at": period.resets_at.isoformat() if period.resets_at else None,
        },
    )


def admit(**arguments) -> Admission:
    """Decide one call: breaker, burst, then reserve its worst case on the user's counters and every budget.
    Raises AiQuotaExceeded or AiBudgetExceeded (nothing reserved); an open circuit comes back as
    `Admission("open")` for the caller to explain. Takes the arguments of `admit_begin`."""
    return admit_begin(**arguments).result()


@dataclass
class PendingAdmission:
    """An admission whose script is on its way to Redis (sent when this is made): `result()` reads the verdict (and
    raises what `admit` raises), `cancel()` gives back what it reserved when the caller gives up before the call."""

    user_id: str
    limits: Limits
    tokens: int
    cost_nano: int
    budgets: list[budgets_module.Budget]
    now: datetime
    periods: _Periods
    budget_keys: list[str]
    keys: list
    arguments: list
    script: object = field(init=False)
    sent: redis_store.SentScript = field(init=False)

    def __post_init__(self) -> None:
        self.script = breaker.script(_ADMIT)
        self.sent = redis_store.SentScript(self.script, self.keys, self.arguments)

    def result(self) -> Admission:
        return _decide(self, self.sent.reply())

    def cancel(self, *, provider: str, model: str) -> None:
        """Read the verdict and release the reservation and a held probe slot (the burst count stays)."""
        try:
            admission = self.result()
        except DomainError:
            return  # refused: nothing was reserved
        batch = redis_store.Batch()
        if admission.reservation is not None:
            settle_on(batch, reservation=admission.reservation, tokens=0, cost_nano=0)
        if admission.verdict == "probe":
            breaker.release_probe_on(batch, provider=provider, model=model)
        if batch.size:
            batch.execute()


def admit_begin(
    *,
    user_id: str,
    limits: Limits,
    tokens: int,
    cost_nano: int,
    provider: str,
    model: str,
    budgets: list[budgets_module.Budget] | None = None,
    now: datetime | None = None,
) -> PendingAdmission:
    """Send the admission script and return at once, so that the caller's own work overlaps the round trip; the
    verdict comes from `PendingAdmission.result()`. A Redis failure is raised there (RedisError)."""
    post_call.wait()  # this process's earlier calls are settled first (their results may close a circuit)
    now = now or timezone.now()
    budgets = budgets or []
    periods = _periods(user_id, limits, now)
    budget_keys = [budgets_module.budget_period(budget, now).key for budget in budgets]
    arguments = [
        repr(now.timestamp()),
        settings.AI_BREAKER["cooldown_seconds"],
        120,
        limits.burst_per_minute,
        tokens,
        limits.daily_tokens,
        cost_nano,
        round(limits.cost_ceiling_usd * NANO),
        *(budget.limit_nano for budget in budgets),
    ]
    keys = [
        breaker.state_key(provider, model),
        redis_store.key(f"burst:{user_id}:{now:%Y%m%d%H%M}"),
        periods.token_key,
        periods.cost_key,
        *budget_keys,
    ]
    return PendingAdmission(
        user_id=user_id,
        limits=limits,
        tokens=tokens,
        cost_nano=cost_nano,
        budgets=budgets,
        now=now,
        periods=periods,
        budget_keys=budget_keys,
        keys=keys,
        arguments=arguments,
    )


def _decide(pending: PendingAdmission, reply: list) -> Admission:
    user_id, limits, tokens, cost_nano = pending.user_id, pending.limits, pending.tokens, pending.cost_nano
    budgets, now, periods, budget_keys = pending.budgets, pending.now, pending.periods, pending.budget_keys
    verdict, count, used_tokens, used_cost = reply
    for _ in range(2):  # at most three tries, as counters may vanish again (a flush, an expiry) right after seeding
        if verdict != "seed":
            break
        _seed(user_id, periods, now, budgets, budget_keys)
        verdict, count, used_tokens, used_cost = pending.script(keys=pending.keys, args=pending.arguments)
    if verdict == "seed":  # pragma: no cover - the counters were deleted again between each seeding and the next try
        raise AiQuotaExceeded("Your AI quota could not be checked. Try again in a moment.")
    if verdict in ("closed", "probe", "open"):
        reservation = (
            Reservation(periods.token_key, periods.cost_key, tokens, cost_nano, list(budgets), budget_keys, at=now)
            if verdict != "open"
            else None
        )
        return Admission(verdict=verdict, reservation=reservation)
    if verdict == "budget":
        raise _budget_refusal(budgets[int(used_tokens) - 1], spent=int(used_cost), cost_nano=cost_nano, now=now)
    if verdict == "burst":
        raise _refuse(
            limit="burst_per_minute",
            message=f"Too many AI requests: at most {limits.burst_per_minute} a minute.",
            resets_at=now.replace(second=0, microsecond=0) + timedelta(minutes=1),
            limit_value=limits.burst_per_minute,
            used=count - 1,
        )
    if verdict == "tokens":
        message = (
            f"This request needs up to {tokens} tokens, more than your daily cap of {limits.daily_tokens}."
            if tokens > limits.daily_tokens
            else f"Daily AI token cap reached ({used_tokens} of {limits.daily_tokens} tokens used)."
        )
        raise _refuse(
            limit="daily_tokens",
            message=message,
            resets_at=periods.day_resets,
            limit_value=limits.daily_tokens,
            used=used_tokens,
        )
    used_usd = used_cost / NANO
    cost = cost_nano / NANO
    message = (
        f"This request may cost up to ${cost:.4f}, more than your ceiling of "
        f"${limits.cost_ceiling_usd:.2f} per {limits.cost_period}."
        if cost > limits.cost_ceiling_usd
        else f"AI cost ceiling reached (${used_usd:.4f} of ${limits.cost_ceiling_usd:.2f} "
        f"per {limits.cost_period} used)."
    )
    raise _refuse(
        limit="cost_ceiling",
        message=message,
        resets_at=periods.cost_resets,
        limit_value=limits.cost_ceiling_usd,
        used=round(used_usd, 6),
    )


def settle_on(batch: redis_store.Batch, *, reservation: Reservation, tokens: int, cost_nano: int) -> int:
    """Queue on `batch` the replacement of the reserved worst case by the real usage, on the user's counters and
    every budget's. Returns the index of the result: the budgets' spend after settling (-1 for a vanished one)."""
    delta_tokens = tokens - reservation.tokens
    delta_cost = cost_nano - reservation.cost_nano
    return batch.script(
        breaker.script(_SETTLE),
        [reservation.token_key, reservation.cost_key, *reservation.budget_keys],
        [delta_tokens, delta_cost],
    )


def quota_usage(*, user_id: str, role: str, now: datetime | None = None) -> dict:
    """What a user has used in the current periods (reservations in flight included), with limits and resets."""
    post_call.wait()
    now = now or timezone.now()
    limits = limits_for(role)
    periods = _periods(user_id, limits, now)
    client = redis_store.client()
    tokens, cost_nano = client.mget(periods.token_key, periods.cost_key)
    if tokens is None or cost_nano is None:
        _seed(user_id, periods, now, [], [])
        tokens, cost_nano = client.mget(periods.token_key, periods.cost_key)
    return {
        "tokens_used": int(tokens or 0),
        "daily_tokens": limits.daily_tokens,
        "tokens_reset_at": periods.day_resets.isoformat(),
        "cost_used_usd": round(int(cost_nano or 0) / NANO, 9),
        "cost_ceiling_usd": limits.cost_ceiling_usd,
        "cost_period": limits.cost_period,
        "cost_reset_at": periods.cost_resets.isoformat(),
        "burst_per_minute": limits.burst_per_minute,
    }

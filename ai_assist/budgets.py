"""Pooled AI budgets (AiBudget): per role, per release candidate, per task template; their counters and warnings.

A call is subject to every enabled budget that matches it (its user's role, its RC, its template), on top of the
user's own quota. The counters are reserved and settled in the same Lua scripts as the quota (ai_assist/quotas.py),
so 20 parallel calls on a budget that fits one let exactly one through, at every level.

Counters: `rp:ai:budget:<id>:<revision>:<d<YYYYMMDD>|m<YYYYMM>|all>` in integer nano-dollars. The revision changes
when the budget's scope, target or period changes, so its counter is then re-seeded from `aiUsageLogs` (the sum of
the period's rows), as is a counter Redis lost. A "total" budget is seeded from the logs still kept (90 days).

Each process keeps the enabled budgets in memory, reloaded in the background every AI_CONFIG_CACHE_SECONDS
(ai_assist/config_cache.py).

Warnings: when a budget's use reaches 80 % and when it reaches 100 % (or a call is refused by it), the active admins
(role admin, plus settings.ADMINS) get one e-mail per budget, threshold and period, whatever the number of
processes: the first to claim `rp:ai:budget-warned:...` with SET NX sends it.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from bson import ObjectId
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Sum

from ai_assist import redis_store
from ai_assist.config_cache import ConfigCache
from ai_assist.pricing import nano_to_usd_text

logger = logging.getLogger(__name__)

WARN_THRESHOLDS = (80, 100)
SCOPE_LABELS = {"role": "role", "release_candidate": "release candidate", "template": "task template"}


@dataclass(frozen=True)
class Budget:
    """An enabled AiBudget as the gateway uses it."""

    id: str
    name: str
    scope: str
    target: str
    period: str
    limit_nano: int
    revision: str


@dataclass(frozen=True)
class BudgetPeriod:
    key: str
    tag: str
    start: datetime | None  # None: a total budget counts every kept usage row
    resets_at: datetime | None  # None: never resets


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return _day_start(now).replace(day=1)


def next_month(now: datetime) -> datetime:
    return (month_start(now) + timedelta(days=32)).replace(day=1)


def budget_period(budget: Budget, now: datetime) -> BudgetPeriod:
    """The counter key and bounds of the budget's current period."""
    return _budget_period_of_day(budget, _day_start(now))


@lru_cache(maxsize=1024)
def _budget_period_of_day(budget: Budget, now: datetime) -> BudgetPeriod:
    if budget.period == "day":
        tag, start, resets = f"d{now:%Y%m%d}", _day_start(now), _day_start(now) + timedelta(days=1)
    elif budget.period == "month":
        tag, start, resets = f"m{now:%Y%m}", month_start(now), next_month(now)
    else:
        tag, start, resets = "all", None, None
    return BudgetPeriod(
        key=redis_store.key(f"budget:{budget.id}:{budget.revision}:{tag}"), tag=tag, start=start, resets_at=resets
    )


def _revision(scope: str, target: str, period: str) -> str:
    return hashlib.sha1(f"{scope}|{target}|{period}".encode(), usedforsecurity=False).hexdigest()[:8]


def _load() -> list[Budget]:
    from ai_assist.models import AiBudget

    return [
        Budget(
            id=str(row.pk),
            name=row.name,
            scope=row.scope,
            target=row.target,
            period=row.period,
            limit_nano=int(row.limit_nano),
            revision=_revision(row.scope, row.target, row.period),
        )
        for row in AiBudget.objects.filter(enabled=True).order_by("scope", "name")
    ]


def _load_indexed() -> tuple[list[Budget], dict[tuple[str, str], list[Budget]]]:
    budgets = _load()
    index: dict[tuple[str, str], list[Budget]] = {}
    for budget in budgets:
        index.setdefault((budget.scope, budget.target), []).append(budget)
    return budgets, index


_cache: ConfigCache[tuple[list[Budget], dict[tuple[str, str], list[Budget]]]] = ConfigCache("budgets", _load_indexed)
budget_cache_clear = _cache.clear


def budgets_enabled() -> list[Budget]:
    """Every enabled budget (this process's copy)."""
    return list(_cache.get()[0])


def budgets_for(*, role: str, release_candidate_id: str, template_id: str) -> list[Budget]:
    """Every enabled budget a call by this role, on this RC (may be empty) and with this template counts against."""
    index = _cache.get()[1]
    if not index:
        return []
    found = [*index.get(("role", role), ()), *index.get(("template", template_id), ())]
    if release_candidate_id:
        found.extend(index.get(("release_candidate", release_candidate_id), ()))
    return found


def budget_spent_from_logs(budget: Budget, period: BudgetPeriod) -> int:
    """The budget's spend in the period, from the usage rows (nano-dollars)."""
    from ai_assist.models import AiUsageLog

    rows = AiUsageLog.objects.all()
    if period.start is not None:
        rows = rows.filter(created_at__gte=period.start)
    if budget.scope == "role":
        rows = rows.filter(role=budget.target)
    elif budget.scope == "release_candidate":
        rows = rows.filter(release_candidate_id=ObjectId(budget.target) if ObjectId.is_valid(budget.target) else None)
    else:
        rows = rows.filter(template_id=budget.target)
    return int(rows.aggregate(spent=Sum("cost_nano"))["spent"] or 0)


def expiry_seconds(resets_at: datetime | None, now: datetime) -> int | None:
    """Relative expiry of a period's key (tests move `timezone.now()`, Redis keeps the real clock)."""
    if resets_at is None:
        return None
    return max(60, math.ceil((resets_at - now).total_seconds()) + 2 * 86400)


def seed_on(pipe, budget: Budget, period: BudgetPeriod, now: datetime) -> None:
    """Queue on a pipeline the creation of a missing counter from the logs (NX: a concurrent seeder's value wins)."""
    pipe.set(period.key, budget_spent_from_logs(budget, period), nx=True, ex=expiry_seconds(period.resets_at, now))


def budget_usage(*, now: datetime) -> list[dict]:
    """Every enabled budget with its spend in the current period (reservations in flight included)."""
    budgets = budgets_enabled()
    if not budgets:
        return []
    periods = [budget_period(budget, now) for budget in budgets]
    client = redis_store.client()
    values = client.mget([period.key for period in periods])
    if any(value is None for value in values):
        pipe = client.pipeline(transaction=False)
        for budget, period, value in zip(budgets, periods, values, strict=True):
            if value is None:
                seed_on(pipe, budget, period, now)
        pipe.execute()
        values = client.mget([period.key for period in periods])
    rows = []
    for budget, period, value in zip(budgets, periods, values, strict=True):
        used = int(value or 0)
        rows.append(
            {
                "budget": budget,
                "used_nano": used,
                "left_nano": max(0, budget.limit_nano - used),
                "ratio": used / budget.limit_nano if budget.limit_nano else 1.0,
                "resets_at": period.resets_at,
            }
        )
    return rows


def usd_display(nano: int) -> str:
    """USD for people: cents from one dollar up, else six decimals (small budgets stay readable)."""
    return f"${nano_to_usd_text(nano, 2 if nano >= 1_000_000_000 else 6)}"


def describe_left(budget: Budget, *, used_nano: int) -> str:
    left = max(0, budget.limit_nano - used_nano)
    per = "in total" if budget.period == "total" else f"per {budget.period}"
    return f"{usd_display(left)} of {usd_display(budget.limit_nano)} {per} left"


def _recipients() -> list[str]:
    from accounts import selectors as account_selectors

    emails = {user.email for user in account_selectors.user_list(role="admin") if user.is_active and user.email}
    emails.update(email for _, email in getattr(settings, "ADMINS", ()))
    return sorted(emails)


_warned: set[str] = set()  # this process already knows these warnings went out (saves a round trip per call)


def budget_warn(*, budget: Budget, now: datetime, used_nano: int, refused: bool = False) -> list[int]:
    """Mail the admins for each threshold (80 %, 100 %) the budget's use reached in this period, once per budget,
    threshold and period across every process. A refusal by the budget counts as 100 %. Returns the threshold
    mailed by this call (empty when none)."""
    from ai_assist import metrics

    if budget.limit_nano <= 0:
        reached = 100
    else:
        reached = max([t for t in WARN_THRESHOLDS if used_nano * 100 >= budget.limit_nano * t], default=0)
    if refused:
        reached = 100
    period = budget_period(budget, now)
    claimed: dict[int, str] = {}
    for threshold in WARN_THRESHOLDS:
        if threshold > reached:
            break
        marker = redis_store.key(f"budget-warned:{budget.id}:{budget.revision}:{period.tag}:{threshold}")
        if marker in _warned:
            continue
        if redis_store.client().set(marker, "1", nx=True, ex=expiry_seconds(period.resets_at, now)):
            claimed[threshold] = marker
        _warned.add(marker)
    if not claimed:
        return []
    # A jump straight past several thresholds sends one mail, for the highest (the lower ones are claimed too).
    threshold = max(claimed)
    try:
        _warning_mail(budget, period=period, threshold=threshold, used_nano=used_nano)
    except Exception:
        # Not sent: give the claim back so a later call (in any process) tries again.
        redis_store.client().delete(*claimed.values())
        _warned.difference_update(claimed.values())
        raise
    metrics.BUDGET_WARNINGS.labels(budget=budget.name, threshold=str(threshold)).inc()
    return [threshold]


def _warning_mail(budget: Budget, *, period: BudgetPeriod, threshold: int, used_nano: int) -> None:
    recipients = _recipients()
    if not recipients:
        logger.warning("AI budget warning not mailed: no admin has an e-mail address", extra={"budget": budget.name})
        return
    state = "used up" if threshold >= 100 else f"at {threshold} %"
    resets = f"It resets at {period.resets_at:%Y-%m-%d %H:%M} UTC." if period.resets_at else "It never resets."
    body = (
        f'The AI {SCOPE_LABELS.get(budget.scope, budget.scope)} budget "{budget.name}" is {state}: '
        f"{usd_display(used_nano)} spent of {usd_display(budget.limit_nano)} "
        f"({'in total' if budget.period == 'total' else 'this ' + budget.period}). {resets}\n"
        + ("Calls that do not fit are refused until then.\n" if threshold >= 100 else "")
        + "Raise or disable it in the Django admin (AI assistance > AI budgets)."
    )
    subject = f'{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}AI budget "{budget.name}" {state}'
    send_mail(subject, body, None, recipients, fail_silently=False)


def budget_warned_forget() -> None:
    """Forget which warnings this process saw go out (tests clear Redis between tests)."""
    _warned.clear()

"""Prometheus metrics of the AI gateway (exported at /metrics; alert rules use these names).

rp_ai_tokens_total{model,task,rc,kind}   tokens by the kind they are charged as: "prompt" (not cached) |
                                         "cached_prompt" | "cache_write" | "completion" (not reasoning) | "reasoning"
rp_ai_cost_usd_total{model,task,rc}      cost charged
rp_ai_request_seconds{model,task}        latency histogram (provider calls)
rp_ai_requests_total{model,task,outcome} calls by outcome success | refused | failed
rp_ai_unpriced_refusals_total{provider,model}  calls refused because the model has no valid price
rp_ai_budget_refusals_total{budget,scope}      calls refused by a pooled budget
rp_ai_budget_warnings_total{budget,threshold}  budget warning e-mails sent (80, 100)
rp_ai_breaker_state{provider,model}      0 closed, 1 half-open, 2 open, read from Redis at scrape time so every
                                         process reports the shared state
rp_ai_budget_used_ratio{budget,scope,period}   spend / limit of each enabled budget in its current period, and
rp_ai_budget_used_usd / rp_ai_budget_limit_usd  the figures themselves, read from Redis at scrape time
"""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

TOKENS = Counter("rp_ai_tokens", "AI tokens used.", ["model", "task", "rc", "kind"])
COST = Counter("rp_ai_cost_usd", "AI cost charged in USD.", ["model", "task", "rc"])
REQUEST_SECONDS = Histogram(
    "rp_ai_request_seconds",
    "AI provider call latency in seconds.",
    ["model", "task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60),
)
REQUESTS = Counter("rp_ai_requests", "AI calls by outcome.", ["model", "task", "outcome"])
UNPRICED_REFUSALS = Counter(
    "rp_ai_unpriced_refusals", "AI calls refused because the model has no valid price.", ["provider", "model"]
)
BUDGET_REFUSALS = Counter("rp_ai_budget_refusals", "AI calls refused by a pooled budget.", ["budget", "scope"])
BUDGET_WARNINGS = Counter("rp_ai_budget_warnings", "AI budget warning e-mails sent.", ["budget", "threshold"])


def task_label(task_id: str) -> str:
    """Keep label cardinality low: "report:abc" counts as "report"."""
    return (task_id.split(":", 1)[0] or "unknown")[:40]


def record_call(
    *,
    model: str,
    task_id: str,
    rc: str,
    outcome: str,
    usage,
    cost_nano: int,
    latency_s: float | None,
) -> None:
    task = task_label(task_id)
    REQUESTS.labels(model=model, task=task, outcome=outcome).inc()
    for kind, count in usage.billable().items():
        if count:
            TOKENS.labels(model=model, task=task, rc=rc, kind=kind).inc(count)
    if cost_nano:
        COST.labels(model=model, task=task, rc=rc).inc(cost_nano / 1e9)
    if latency_s is not None:
        REQUEST_SECONDS.labels(model=model, task=task).observe(latency_s)


class BreakerStateCollector:
    def collect(self):
        from ai_assist.breaker import breaker_states

        gauge = GaugeMetricFamily(
            "rp_ai_breaker_state", "AI circuit breaker: 0 closed, 1 half-open, 2 open.", labels=["provider", "model"]
        )
        try:
            for state in breaker_states():
                gauge.add_metric([state.provider, state.model], state.value)
        except RedisError:
            logger.warning("breaker state unavailable for /metrics: Redis is unreachable")
        yield gauge

    def describe(self):
        return [GaugeMetricFamily("rp_ai_breaker_state", "AI circuit breaker state.", labels=["provider", "model"])]


class BudgetCollector:
    """Budget use at scrape time, from the shared counters (every process reports the same figures)."""

    def _families(self):
        labels = ["budget", "scope", "period"]
        return (
            GaugeMetricFamily(
                "rp_ai_budget_used_ratio", "AI budget spend / limit in its current period.", labels=labels
            ),
            GaugeMetricFamily("rp_ai_budget_used_usd", "AI budget spend in its current period (USD).", labels=labels),
            GaugeMetricFamily("rp_ai_budget_limit_usd", "AI budget limit (USD).", labels=labels),
        )

    def collect(self):
        from django.utils import timezone
        from pymongo.errors import PyMongoError

        from ai_assist.budgets import budget_usage

        ratio, used, limit = self._families()
        try:
            for row in budget_usage(now=timezone.now()):
                budget = row["budget"]
                values = [budget.name, budget.scope, budget.period]
                ratio.add_metric(values, row["ratio"])
                used.add_metric(values, row["used_nano"] / 1e9)
                limit.add_metric(values, budget.limit_nano / 1e9)
        except (RedisError, PyMongoError):
            logger.warning("AI budget use unavailable for /metrics: Redis or MongoDB is unreachable")
        yield from (ratio, used, limit)

    def describe(self):
        return list(self._families())


_registered: list = []


def register_collectors() -> None:
    """Called from AppConfig.ready(); registers the breaker collector once per process."""
    if not _registered:
        from ai_assist import post_call
        from report_platform.observability import BEFORE_SCRAPE

        _registered.extend([BreakerStateCollector(), BudgetCollector()])
        for collector in _registered:
            REGISTRY.register(collector)
        BEFORE_SCRAPE.append(post_call.wait)  # counters of finished calls are updated on the post-call thread

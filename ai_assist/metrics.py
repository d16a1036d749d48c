"""Prometheus metrics of the AI gateway (exported at /metrics; alert rules use these names).

rp_ai_tokens_total{model,task,rc,kind}   tokens by kind "prompt" | "completion"
rp_ai_cost_usd_total{model,task,rc}      cost charged
rp_ai_request_seconds{model,task}        latency histogram (provider calls)
rp_ai_requests_total{model,task,outcome} calls by outcome success | refused | failed
rp_ai_breaker_state{provider,model}      0 closed, 1 half-open, 2 open, read from Redis at scrape time so every
                                         process reports the shared state
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


def task_label(task_id: str) -> str:
    """Keep label cardinality low: "report:abc" counts as "report"."""
    return (task_id.split(":", 1)[0] or "unknown")[:40]


def record_call(
    *,
    model: str,
    task_id: str,
    rc: str,
    outcome: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost: float,
    latency_s: float | None,
) -> None:
    task = task_label(task_id)
    REQUESTS.labels(model=model, task=task, outcome=outcome).inc()
    if prompt_tokens:
        TOKENS.labels(model=model, task=task, rc=rc, kind="prompt").inc(prompt_tokens)
    if completion_tokens:
        TOKENS.labels(model=model, task=task, rc=rc, kind="completion").inc(completion_tokens)
    if cost:
        COST.labels(model=model, task=task, rc=rc).inc(cost)
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


_registered: list[BreakerStateCollector] = []


def register_collectors() -> None:
    """Called from AppConfig.ready(); registers the breaker collector once per process."""
    if not _registered:
        from ai_assist import post_call
        from report_platform.observability import BEFORE_SCRAPE

        _registered.append(BreakerStateCollector())
        REGISTRY.register(_registered[0])
        BEFORE_SCRAPE.append(post_call.wait)  # counters of finished calls are updated on the post-call thread

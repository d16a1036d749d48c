"""AI gateway overhead over the bare `openai` SDK call, against the same loopback fake OpenAI server.

Per iteration, side by side: one bare SDK call (same messages, same client settings) and one `ai_generate_text`
call (template, redaction, breaker, burst, quota reservation + settlement, usage log, metrics). The gateway's own
overhead per call is its wall time minus the SDK call inside it; the side-by-side p50 difference is reported too.

Targets (QUALITY.md): overhead p50 <= 1 ms, p99 <= 3 ms. The gateway makes three database round trips per call
(quota reservation, settlement, usage log insert) and two Redis round trips (breaker admission + burst count,
breaker record). On the embedded MongoDB stand-in each write costs ~1-2 ms idle (far more under load), so the same
three raw pymongo writes are timed side by side as a reference, and the gateway's own CPU time per call (thread CPU
time: no waiting on any server) is reported beside the wall-clock overhead.
"""

from __future__ import annotations

import logging
import os
import statistics
import time

from benchmarks.table import BenchRow

ITERATIONS = int(os.environ.get("BENCH_AI_ITERATIONS", "400"))
WARMUP = 30


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run() -> list[BenchRow]:
    import openai
    from bson import ObjectId
    from django.conf import settings
    from django.db import connection

    from accounts.models import User
    from ai_assist import redis_store
    from ai_assist.prompts import template_get
    from ai_assist.services import ai_generate_text
    from tests.ai_assist.fake_openai import FakeOpenAI

    # Per-request INFO lines of the HTTP client would be measured in both paths; they are not the gateway's cost.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    server = FakeOpenAI().start()
    saved = {
        name: getattr(settings, name)
        for name in ("AI_PROVIDER", "AI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "AI_QUOTAS", "AI_BREAKER")
    }
    settings.AI_PROVIDER = "openai"
    settings.AI_MODEL = "gpt-4o-mini"
    settings.OPENAI_BASE_URL = server.url
    settings.OPENAI_API_KEY = "sk-bench-loopback-only-0000000000000000"
    big = {"daily_tokens": 10**12, "cost_ceiling_usd": 10**9, "cost_period": "day", "burst_per_minute": 10**9}
    settings.AI_QUOTAS = {"viewer": big, "reviewer": big, "admin": big}
    settings.AI_BREAKER = {**settings.AI_BREAKER, "latency_p95_seconds": 60.0, "cost_threshold_usd": 10**9}
    user = User.objects.create_user(email="bench-ai@example.com", password="bench-password-123", role="viewer")
    variables = {
        "release_candidate": "RC-2026.11.2",
        "total": 1200,
        "passed": 1100,
        "failed": 80,
        "pending": 20,
        "pass_rate": 91.7,
        "by_category": {"auth": "12 failing", "billing": "9 failing", "search": "7 failing"},
        "notes": "Escalated by dana.smith@example.com from 10.1.2.3; see https://ci.example.com/job?token=abc123def",
    }
    template = template_get("report_summary")
    messages = template.render(variables)
    bare_client = openai.OpenAI(api_key=settings.OPENAI_API_KEY, base_url=server.url, timeout=30, max_retries=0)
    database = connection.database
    scratch = database["benchAiRoundTrips"]
    scratch.insert_one({"_id": "counter", "tokens": {}, "cost": {}})

    bare_ms: list[float] = []
    gateway_ms: list[float] = []
    overhead_ms: list[float] = []
    cpu_overhead_ms: list[float] = []
    db_ms: list[float] = []
    try:
        for index in range(WARMUP + ITERATIONS):
            started, cpu_started = time.perf_counter(), time.thread_time()
            bare_client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=700)
            bare = (time.perf_counter() - started) * 1000
            bare_cpu = (time.thread_time() - cpu_started) * 1000
            started, cpu_started = time.perf_counter(), time.thread_time()
            result = ai_generate_text(
                user=user, task_id="report_summary", template_id="report_summary", variables=variables
            )
            total = (time.perf_counter() - started) * 1000
            gateway_cpu = (time.thread_time() - cpu_started) * 1000
            # The three database round trips the gateway makes, done with raw pymongo on the same server.
            started = time.perf_counter()
            scratch.update_one(
                {"_id": "counter", "tokens.d1": {"$not": {"$gt": 10**12}}}, {"$inc": {"tokens.d1": 900, "cost.d1": 0.1}}
            )
            scratch.update_one({"_id": "counter"}, {"$inc": {"tokens.d1": -700, "cost.d1": -0.05}})
            scratch.insert_one({"_id": ObjectId(), "prompt": result.text, "tokens": 200, "model": "gpt-4o-mini"})
            raw_db = (time.perf_counter() - started) * 1000
            if index >= WARMUP:
                bare_ms.append(bare)
                gateway_ms.append(total)
                overhead_ms.append(total - result.latency_ms)
                cpu_overhead_ms.append(gateway_cpu - bare_cpu)
                db_ms.append(raw_db)
    finally:
        server.stop()
        for name, value in saved.items():
            setattr(settings, name, value)
        database["aiUsageLogs"].delete_many({"user_id": user.pk})
        database["aiQuotaCounters"].delete_many({"key": f"user:{user.pk}"})
        scratch.drop()
        user.delete()
        redis_store.client().delete(*redis_store.client().keys(redis_store.key("*")) or ["none"])

    p50, p99 = _percentile(overhead_ms, 0.5), _percentile(overhead_ms, 0.99)
    db50, db99 = _percentile(db_ms, 0.5), _percentile(db_ms, 0.99)
    net = [overhead - database_ms for overhead, database_ms in zip(overhead_ms, db_ms, strict=True)]
    net50, net99 = _percentile(net, 0.5), _percentile(net, 0.99)
    cpu50, cpu99 = _percentile(cpu_overhead_ms, 0.5), _percentile(cpu_overhead_ms, 0.99)
    side_by_side = statistics.median(gateway_ms) - statistics.median(bare_ms)
    standin = bool(settings.MONGODB_STANDIN)
    detail = f"{ITERATIONS} calls; bare SDK p50 {statistics.median(bare_ms):.2f} ms"
    where = f"stand-in: its 3 writes alone take {db50:.1f} ms" if standin else "real MongoDB"
    return [
        # Wall clock, everything included (the target as QUALITY.md states it). On the stand-in the three writes
        # alone exceed it (reference row below); reported as measured.
        BenchRow("ai", "gateway overhead p50 (ms, wall)", p50, "<= 1 ms", p50 <= 1.0, where),
        BenchRow("ai", "gateway overhead p99 (ms, wall)", p99, "<= 3 ms", p99 <= 3.0, where),
        BenchRow("ai", "3 raw DB round trips p50 (ms)", db50, "reference", True, f"p99 {db99:.2f} ms, same server"),
        BenchRow("ai", "wall overhead net of DB p50 (ms)", net50, "reference", True, "includes 2 Redis round trips"),
        BenchRow("ai", "wall overhead net of DB p99 (ms)", net99, "reference", True, "includes 2 Redis round trips"),
        # CPU time of the calling thread: the gateway's own work (template, redaction, quota and breaker
        # bookkeeping, log document, metrics, client-side driver work) without waiting on any server.
        BenchRow("ai", "gateway CPU overhead p50 (ms)", cpu50, "<= 1 ms", cpu50 <= 1.0, detail),
        BenchRow("ai", "gateway CPU overhead p99 (ms)", cpu99, "<= 3 ms", cpu99 <= 3.0, detail),
        BenchRow("ai", "side-by-side p50 difference (ms)", side_by_side, "reference", True, "gateway - bare SDK"),
    ]

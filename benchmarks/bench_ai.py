"""AI gateway overhead over the bare `openai` SDK call, against the same loopback fake OpenAI server.

Per iteration, side by side: one bare SDK call (same messages, same client settings) and one `ai_generate_text`
call (template, redaction, price lookup, breaker, burst, quota reservation, settlement, usage row, metrics), with a
pooled budget at every level on (the user's role, the call's RC and its task template: all reserved and settled).
The gateway's own overhead is its wall time minus the SDK call inside it; the side-by-side p50 difference is
reported too.

Targets (QUALITY.md / issue 6): overhead p50 <= 1 ms, p99 <= 3 ms.

What the caller waits for: one Redis round trip before the provider (breaker, burst and the atomic reservation in
one Lua script) and the CPU work around the call. The second round trip (settlement, breaker record, usage row)
runs on the post-call thread, and rows reach MongoDB in batches (ai_assist/post_call.py, usage_buffer.py). The
background drain runs as in production (every AI_USAGE_FLUSH_SECONDS), so it competes with the measured calls.
Work moved off the caller's path still costs CPU: the "all threads" row charges it to each call (process CPU time
from the call's start until its post-call job is done, minus the same for the bare call; the fake server runs in
this process for both), and every call's row is checked to have reached MongoDB.
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


def _redaction_rows(messages: list[dict]) -> list[BenchRow]:
    """Recall and over-redaction on the labelled corpus, and what `redact()` costs on the benchmark's prompt."""
    from ai_assist.redaction import redact, redact_fixed
    from tests.ai_assist.redaction_corpus import corpus_scores

    scores = corpus_scores()
    timings = []
    for index in range(WARMUP + ITERATIONS):
        started = time.perf_counter()
        for message in messages:  # as the gateway does: the template's system text is redacted once and kept
            (redact_fixed if message["role"] == "system" else redact)(message["content"])
        if index >= WARMUP:
            timings.append((time.perf_counter() - started) * 1000)
    recall, over = scores["recall"], scores["over_redaction"]
    return [
        BenchRow(
            "ai", "redaction recall (labelled corpus)", recall, "= 1", recall == 1, f"{scores['snippets']} snippets"
        ),
        BenchRow("ai", "over-redaction (must-survive items)", over, "= 0", over == 0, f"{scores['survivors']} items"),
        BenchRow(
            "ai", "redaction per prompt p50 (ms)", _percentile(timings, 0.5), "reference", True, "inside overhead"
        ),
    ]


def run() -> list[BenchRow]:
    import openai
    from django.conf import settings

    from accounts.models import User
    from ai_assist import post_call, redis_store, usage_buffer
    from ai_assist.budgets import budget_cache_clear
    from ai_assist.models import AiBudget, AiUsageLog
    from ai_assist.prompts import template_get
    from ai_assist.services import ai_generate_text
    from releases.models import ReleaseCandidate
    from tests.ai_assist.fake_openai import FakeOpenAI

    # Per-request INFO lines of the HTTP client would be measured in both paths; they are not the gateway's cost.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    server = FakeOpenAI().start()
    names = ("AI_PROVIDER", "AI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "AI_QUOTAS", "AI_BREAKER")
    saved = {name: getattr(settings, name) for name in (*names, "AI_USAGE_FLUSH_SECONDS")}
    settings.AI_PROVIDER = "openai"
    settings.AI_MODEL = "gpt-4o-mini"
    settings.OPENAI_BASE_URL = server.url
    settings.OPENAI_API_KEY = "sk-bench-loopback-only-0000000000000000"
    settings.AI_USAGE_FLUSH_SECONDS = 1.0  # the production drain thread (test settings switch it off)
    big = {"daily_tokens": 10**12, "cost_ceiling_usd": 10**9, "cost_period": "day", "burst_per_minute": 10**9}
    settings.AI_QUOTAS = {"viewer": big, "reviewer": big, "admin": big}
    settings.AI_BREAKER = {**settings.AI_BREAKER, "latency_p95_seconds": 60.0, "cost_threshold_usd": 10**9}
    user = User.objects.create_user(email="bench-ai@example.com", password="bench-password-123", role="viewer")
    rc = ReleaseCandidate.objects.create(name="BENCH-AI-RC", sequence=10**6)
    roomy = 10**18  # nano-dollars: never refuses, but every level is reserved and settled on each call
    budgets = [
        AiBudget.objects.create(name="bench role", scope="role", role="viewer", period="day", limit_nano=roomy),
        AiBudget.objects.create(
            name="bench rc", scope="release_candidate", release_candidate=rc, period="total", limit_nano=roomy
        ),
        AiBudget.objects.create(
            name="bench template", scope="template", template_id="report_summary", period="month", limit_nano=roomy
        ),
    ]
    budget_cache_clear()
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
    redis = redis_store.client()

    bare_ms: list[float] = []
    gateway_ms: list[float] = []
    overhead_ms: list[float] = []
    thread_cpu_ms: list[float] = []
    all_cpu_ms: list[float] = []
    ping_ms: list[float] = []
    try:
        for index in range(WARMUP + ITERATIONS):
            started, cpu, process_cpu = time.perf_counter(), time.thread_time(), time.process_time()
            bare_client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=700)
            bare = (time.perf_counter() - started) * 1000
            bare_cpu = (time.thread_time() - cpu) * 1000
            bare_all = (time.process_time() - process_cpu) * 1000
            started, cpu, process_cpu = time.perf_counter(), time.thread_time(), time.process_time()
            result = ai_generate_text(
                user=user,
                task_id="report_summary",
                template_id="report_summary",
                variables=variables,
                release_candidate=rc,
            )
            total = (time.perf_counter() - started) * 1000
            gateway_cpu = (time.thread_time() - cpu) * 1000
            post_call.wait()  # outside the wall time; inside the all-threads CPU
            gateway_all = (time.process_time() - process_cpu) * 1000
            started = time.perf_counter()
            redis.ping()
            ping = (time.perf_counter() - started) * 1000
            if index >= WARMUP:
                bare_ms.append(bare)
                gateway_ms.append(total)
                overhead_ms.append(total - result.latency_ms)
                thread_cpu_ms.append(gateway_cpu - bare_cpu)
                all_cpu_ms.append(gateway_all - bare_all)
                ping_ms.append(ping)
        usage_buffer.flush()
        stored = AiUsageLog.objects.filter(user=user).count()
    finally:
        server.stop()
        for name, value in saved.items():
            setattr(settings, name, value)
        AiUsageLog.objects.filter(user=user).delete()
        for budget in budgets:
            budget.delete()
        budget_cache_clear()
        rc.delete()
        user.delete()
        redis.delete(*redis.keys(redis_store.key("*")) or ["none"])

    p50, p99 = _percentile(overhead_ms, 0.5), _percentile(overhead_ms, 0.99)
    cpu50, cpu99 = _percentile(thread_cpu_ms, 0.5), _percentile(thread_cpu_ms, 0.99)
    side_by_side = statistics.median(gateway_ms) - statistics.median(bare_ms)
    calls = WARMUP + ITERATIONS
    detail = f"{ITERATIONS} calls; bare SDK p50 {statistics.median(bare_ms):.2f} ms"
    return [
        BenchRow("ai", "gateway overhead p50 (ms, wall)", p50, "<= 1 ms", p50 <= 1.0, detail),
        BenchRow("ai", "gateway overhead p99 (ms, wall)", p99, "<= 3 ms", p99 <= 3.0, detail),
        BenchRow("ai", "side-by-side p50 difference (ms)", side_by_side, "reference", True, "gateway - bare SDK"),
        BenchRow("ai", "calling thread CPU p50 (ms)", cpu50, "reference", True, f"p99 {cpu99:.3f} ms"),
        BenchRow(
            "ai",
            "CPU per call, all threads (ms, mean)",
            statistics.fmean(all_cpu_ms),
            "reference",
            True,
            "incl. post-call job and batch drain",
        ),
        BenchRow(
            "ai",
            "Redis round trip p50 (ms, PING)",
            _percentile(ping_ms, 0.5),
            "reference",
            True,
            "1 on the call path, 1 off it",
        ),
        BenchRow("ai", "usage rows stored / calls", stored / calls, "= 1", stored == calls, f"{stored} of {calls}"),
        *_redaction_rows(messages),
    ]

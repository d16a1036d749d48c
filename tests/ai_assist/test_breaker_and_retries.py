"""Bounded retries on timeout/429/5xx with a usage log row; the circuit breaker's transitions with moved time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from ai_assist.breaker import breaker_state
from ai_assist.models import AiUsageLog
from ai_assist.services import AiUnavailable, ai_generate_text
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

FIGURES = {"release_candidate": "RC-9", "total": 10, "passed": 9, "failed": 1}
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _call(user):
    return ai_generate_text(user=user, task_id="report_summary", template_id="report_summary", variables=FIGURES)


def _breaker(settings, **overrides):
    settings.AI_BREAKER = {
        "failure_threshold": 3,
        "latency_window": 20,
        "latency_min_samples": 3,
        "latency_p95_seconds": 20.0,
        "cost_interval_seconds": 3600,
        "cost_threshold_usd": 25.0,
        "cooldown_seconds": 60,
        **overrides,
    }


def test_it_retries_a_429_and_then_succeeds(viewer, fake_openai):
    fake_openai.script([{"status": 429}])
    result = _call(viewer)
    assert fake_openai.request_count == 2
    log = AiUsageLog.objects.get(pk=result.usage_log_id)
    assert (log.outcome, log.attempts) == ("success", 2)


def test_it_gives_up_after_bounded_retries_on_5xx_with_a_clear_error_and_a_log(viewer, fake_openai):
    fake_openai.script([{"status": 500}, {"status": 502}, {"status": 503}, {"status": 500}])
    with pytest.raises(AiUnavailable) as failed:
        _call(viewer)
    assert fake_openai.request_count == 3  # 1 + AI_MAX_RETRIES
    assert failed.value.code == "ai_unavailable" and failed.value.status == 503
    assert "Gave up after 3 attempts" in failed.value.message
    log = AiUsageLog.objects.get(user=viewer)
    assert (log.outcome, log.error_code, log.attempts, log.cost_usd) == ("failed", "ai_provider_error", 3, 0)


def test_it_times_out_with_bounded_retries(viewer, fake_openai, settings):
    settings.AI_REQUEST_TIMEOUT_SECONDS = 0.2
    settings.AI_MAX_RETRIES = 1
    fake_openai.script([{"delay": 0.6}, {"delay": 0.6}])
    with pytest.raises(AiUnavailable) as failed:
        _call(viewer)
    assert "did not answer in time" in failed.value.message
    log = AiUsageLog.objects.get(user=viewer)
    assert (log.outcome, log.error_code, log.attempts) == ("failed", "ai_provider_timeout", 2)
    assert fake_openai.request_count == 2


def test_it_opens_on_repeated_failures_fails_fast_and_closes_after_a_cool_down(viewer, fake_openai, settings):
    _breaker(settings)
    settings.AI_MAX_RETRIES = 0
    with time_machine.travel(START, tick=False) as traveller:
        fake_openai.script([{"status": 500}] * 3)
        for _ in range(3):
            with pytest.raises(AiUnavailable):
                _call(viewer)
        state = breaker_state(provider="openai", model="gpt-4o-mini")
        assert (state.state, state.reason) == ("open", "failures")
        with pytest.raises(AiUnavailable) as fast:
            _call(viewer)
        assert "fail fast until 12:01:00 UTC" in fast.value.message
        assert fake_openai.request_count == 3  # the open circuit did not call the provider
        refused = AiUsageLog.objects.get(outcome="refused")
        assert refused.error_code == "ai_unavailable"
        traveller.shift(timedelta(seconds=61))
        assert _call(viewer).outcome == "success"  # the half-open probe
        assert breaker_state(provider="openai", model="gpt-4o-mini").state == "closed"
    assert AuditEvent.objects.filter(action="ai.breaker_opened").count() == 1


def test_it_reopens_when_the_half_open_probe_fails(viewer, fake_openai, settings):
    _breaker(settings, failure_threshold=1)
    settings.AI_MAX_RETRIES = 0
    with time_machine.travel(START, tick=False) as traveller:
        fake_openai.script([{"status": 500}, {"status": 500}])
        with pytest.raises(AiUnavailable):
            _call(viewer)
        traveller.shift(timedelta(seconds=61))
        with pytest.raises(AiUnavailable):
            _call(viewer)
        state = breaker_state(provider="openai", model="gpt-4o-mini")
        assert (state.state, state.reason, state.trips) == ("open", "probe_failed", 2)
    assert AuditEvent.objects.filter(action="ai.breaker_opened").count() == 2


def test_it_opens_when_p95_latency_exceeds_the_threshold(viewer, fake_openai, settings):
    _breaker(settings, latency_p95_seconds=0.1, latency_min_samples=3)
    fake_openai.default_delay = 0.15
    for _ in range(3):
        _call(viewer)
    state = breaker_state(provider="openai", model="gpt-4o-mini")
    assert (state.state, state.reason) == ("open", "latency")
    with pytest.raises(AiUnavailable):
        _call(viewer)
    assert fake_openai.request_count == 3
    assert AuditEvent.objects.filter(action="ai.breaker_opened").count() == 1


def test_it_opens_when_cost_per_interval_exceeds_the_threshold(viewer, fake_openai, settings):
    _breaker(settings, cost_threshold_usd=0.00003)
    _call(viewer)
    _call(viewer)
    state = breaker_state(provider="openai", model="gpt-4o-mini")
    assert (state.state, state.reason) == ("open", "cost")


def test_it_exports_breaker_state_and_call_metrics(viewer, fake_openai, settings, client):
    _breaker(settings, failure_threshold=1)
    settings.AI_MAX_RETRIES = 0
    _call(viewer)
    fake_openai.script([{"status": 500}])
    with pytest.raises(AiUnavailable):
        _call(viewer)
    body = client.get("/metrics").content.decode()
    assert 'rp_ai_breaker_state{model="gpt-4o-mini",provider="openai"} 2.0' in body
    assert 'rp_ai_requests_total{model="gpt-4o-mini",outcome="failed",task="report_summary"}' in body
    assert 'rp_ai_tokens_total{kind="prompt",model="gpt-4o-mini",rc="",task="report_summary"}' in body
    assert 'rp_ai_cost_usd_total{model="gpt-4o-mini",rc="",task="report_summary"}' in body
    assert 'rp_ai_request_seconds_bucket{le="0.5",model="gpt-4o-mini",task="report_summary"}' in body


def test_it_lets_a_single_probe_through_when_half_open(make_user, fake_openai, settings):
    import threading

    from django.db import connection

    _breaker(settings, failure_threshold=1)
    settings.AI_MAX_RETRIES = 0
    users = [make_user("viewer") for _ in range(8)]
    with time_machine.travel(START, tick=True) as traveller:
        fake_openai.script([{"status": 500}])
        with pytest.raises(AiUnavailable):
            _call(users[0])
        traveller.shift(timedelta(seconds=61))
        fake_openai.default_delay = 0.3  # the probe is still in flight while the others arrive
        barrier = threading.Barrier(len(users))
        outcomes: list[str] = []

        def worker(user):
            barrier.wait()
            try:
                outcomes.append(_call(user).outcome)
            except AiUnavailable as error:
                outcomes.append(error.code)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(user,)) for user in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(outcomes) == ["ai_unavailable"] * 7 + ["success"]
    assert fake_openai.request_count == 2  # the tripping failure and the one probe

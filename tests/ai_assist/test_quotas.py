"""Quotas are checked before the provider is called, reserved atomically, settled with real usage, reset daily."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
import time_machine

from ai_assist.models import AiUsageLog
from ai_assist.quotas import AiQuotaExceeded, quota_usage
from ai_assist.services import ai_generate_text
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

FIGURES = {"release_candidate": "RC-9", "total": 10, "passed": 9, "failed": 1, "pass_rate": 90.0}


def _call(user):
    return ai_generate_text(user=user, task_id="report_summary", template_id="report_summary", variables=FIGURES)


def _quota(settings, **overrides):
    base = {"daily_tokens": 100_000, "cost_ceiling_usd": 10.0, "cost_period": "day", "burst_per_minute": 100}
    settings.AI_QUOTAS = {"viewer": {**base, **overrides}, "reviewer": base, "admin": base}


def _reservation_size(make_user, settings):
    probe = make_user("reviewer")
    result = _call(probe)
    return AiUsageLog.objects.get(pk=result.usage_log_id).reserved_tokens


def test_it_lets_exactly_one_of_20_parallel_calls_reach_the_provider(make_user, viewer, fake_openai, settings):
    _quota(settings)
    reserved = _reservation_size(make_user, settings)
    fake_openai.reset()
    # Budget for one call: one worst-case reservation fits; after settling (~130 real tokens) nothing more does.
    _quota(settings, daily_tokens=reserved + 50)
    fake_openai.default_delay = 0.3
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker():
        from django.db import connection

        barrier.wait()
        try:
            _call(viewer)
            outcome = "success"
        except AiQuotaExceeded as error:
            outcome = error.code
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert fake_openai.request_count == 1
    assert sorted(outcomes) == ["ai_quota_exceeded"] * 19 + ["success"]
    logs = AiUsageLog.objects.filter(user=viewer)
    assert logs.filter(outcome="success").count() == 1
    assert logs.filter(outcome="refused", error_code="ai_quota_exceeded").count() == 19
    assert AuditEvent.objects.filter(action="ai.quota_refused", actor_id=str(viewer.pk)).count() == 19


def test_it_charges_the_real_usage_after_the_call(viewer, fake_openai, settings):
    _quota(settings)
    result = _call(viewer)
    usage = quota_usage(user_id=str(viewer.pk), role="viewer")
    assert usage["tokens_used"] == result.prompt_tokens + result.completion_tokens
    assert usage["cost_used_usd"] == pytest.approx(result.cost)
    assert AiUsageLog.objects.get(pk=result.usage_log_id).reserved_tokens > usage["tokens_used"]


def test_it_refuses_over_the_daily_token_cap_before_the_provider_and_resets_next_day(viewer, fake_openai, settings):
    with time_machine.travel(datetime(2026, 11, 25, 23, 58, tzinfo=UTC), tick=True):
        _quota(settings)
        first = _call(viewer)
        used = first.prompt_tokens + first.completion_tokens
        log = AiUsageLog.objects.get(pk=first.usage_log_id)
        _quota(settings, daily_tokens=used + log.reserved_tokens - 1)
        with pytest.raises(AiQuotaExceeded) as refused:
            _call(viewer)
        assert refused.value.extra["limit"] == "daily_tokens"
        assert refused.value.extra["resets_at"] == "2026-11-26T00:00:00+00:00"
        assert "resets at 2026-11-26 00:00 UTC" in refused.value.message
        assert fake_openai.request_count == 1
    with time_machine.travel(datetime(2026, 11, 26, 0, 0, 5, tzinfo=UTC), tick=True):
        assert _call(viewer).outcome == "success"
    assert fake_openai.request_count == 2
    refused_log = AiUsageLog.objects.get(outcome="refused")
    assert (refused_log.error_code, refused_log.prompt_tokens, refused_log.cost_usd) == ("ai_quota_exceeded", 0, 0)
    assert AuditEvent.objects.filter(action="ai.quota_refused").count() == 1


def test_it_refuses_over_the_monthly_cost_ceiling(viewer, fake_openai, settings):
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), tick=True):
        _quota(settings, cost_ceiling_usd=0.0001, cost_period="month")
        with pytest.raises(AiQuotaExceeded) as refused:
            _call(viewer)
    assert refused.value.extra["limit"] == "cost_ceiling"
    assert refused.value.extra["resets_at"] == "2026-12-01T00:00:00+00:00"
    assert fake_openai.request_count == 0


def test_it_refuses_over_the_burst_limit(viewer, fake_openai, settings):
    _quota(settings, burst_per_minute=2)
    _call(viewer)
    _call(viewer)
    with pytest.raises(AiQuotaExceeded) as refused:
        _call(viewer)
    assert refused.value.extra["limit"] == "burst_per_minute"
    assert "at most 2 a minute" in refused.value.message
    assert fake_openai.request_count == 2


def test_it_explains_a_refusal_in_the_api_envelope(viewer_client, viewer, settings, release_data):
    _quota(settings, daily_tokens=10)
    response = viewer_client.post(
        "/api/v1/ai/assist",
        {"task": "triage_failure", "run": str(release_data["run"].pk)},
        content_type="application/json",
    )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "ai_quota_exceeded" and error["limit"] == "daily_tokens" and error["resets_at"]
    assert "daily cap of 10" in error["message"]
    log = AiUsageLog.objects.get(user=viewer)
    assert (log.outcome, log.task_id, log.subject) == ("refused", "triage_failure", f"run:{release_data['run'].pk}")


def test_it_refuses_once_the_cost_spent_reaches_the_ceiling(viewer, fake_openai, settings):
    _quota(settings)
    first = _call(viewer)
    reserved_cost = AiUsageLog.objects.get(pk=first.usage_log_id).reserved_cost_usd
    _quota(settings, cost_ceiling_usd=first.cost + reserved_cost - 0.00001)
    with pytest.raises(AiQuotaExceeded) as refused:
        _call(viewer)
    assert refused.value.extra["limit"] == "cost_ceiling" and "cost ceiling reached" in refused.value.message
    assert fake_openai.request_count == 1


def test_the_admission_is_on_its_way_while_the_prompt_is_redacted(viewer, fake_openai, settings, monkeypatch):
    """The admission script is sent before the redaction and its verdict read after it, so the round trip overlaps
    the gateway's CPU work; the provider still only sees the redacted prompt."""
    from ai_assist import quotas, redis_store, services

    _quota(settings)
    order: list[str] = []
    original_send, original_reply, original_redact = (
        redis_store.SentScript.__init__,
        redis_store.SentScript.reply,
        services._redact_prompt,
    )

    def send(self, *args, **kwargs):
        order.append("admission sent")
        original_send(self, *args, **kwargs)

    def reply(self):
        order.append("verdict read")
        return original_reply(self)

    def redact_prompt(*args, **kwargs):
        order.append("prompt redacted")
        original_redact(*args, **kwargs)

    monkeypatch.setattr(redis_store.SentScript, "__init__", send)
    monkeypatch.setattr(redis_store.SentScript, "reply", reply)
    monkeypatch.setattr(services, "_redact_prompt", redact_prompt)
    variables = {**FIGURES, "notes": "reported by dana.smith@example.com"}
    ai_generate_text(user=viewer, task_id="report_summary", template_id="report_summary", variables=variables)
    assert order == ["admission sent", "prompt redacted", "verdict read"]
    sent = json.dumps(fake_openai.requests[-1])
    assert "dana.smith@example.com" not in sent and "[REDACTED_EMAIL]" in sent
    assert quotas.quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"] > 0


def test_a_cancelled_admission_gives_back_its_reservation(viewer, settings):
    from ai_assist import quotas

    _quota(settings)
    limits = quotas.limits_for("viewer")
    before = quotas.quota_usage(user_id=str(viewer.pk), role="viewer")
    pending = quotas.admit_begin(
        user_id=str(viewer.pk), limits=limits, tokens=700, cost_nano=5_000, provider="openai", model="gpt-4o-mini"
    )
    pending.cancel(provider="openai", model="gpt-4o-mini")
    after = quotas.quota_usage(user_id=str(viewer.pk), role="viewer")
    assert (after["tokens_used"], after["cost_used_usd"]) == (before["tokens_used"], before["cost_used_usd"])
    admitted = quotas.admit(
        user_id=str(viewer.pk), limits=limits, tokens=700, cost_nano=5_000, provider="openai", model="gpt-4o-mini"
    )
    assert admitted.verdict == "closed"
    assert quotas.quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"] == before["tokens_used"] + 700


def test_a_sent_admission_survives_a_redis_that_forgot_its_scripts(viewer, settings):
    """A Redis restart (or SCRIPT FLUSH) between two calls: the sent EVALSHA answers NOSCRIPT, and the script is
    loaded and run instead of the call failing."""
    from ai_assist import quotas, redis_store

    _quota(settings)
    limits = quotas.limits_for("viewer")
    quotas.admit(user_id=str(viewer.pk), limits=limits, tokens=10, cost_nano=1, provider="openai", model="m")
    redis_store.client().script_flush()
    admission = quotas.admit(
        user_id=str(viewer.pk), limits=limits, tokens=10, cost_nano=1, provider="openai", model="m"
    )
    assert admission.verdict == "closed"
    assert quotas.quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"] == 20


def test_a_redis_that_cannot_be_reached_refuses_the_call_at_the_verdict(viewer, fake_openai, settings, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from ai_assist import redis_store
    from ai_assist.services import AiUnavailable

    _quota(settings)

    def unreachable(self, *args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(redis_store.client().connection_pool.connection_class, "send_command", unreachable)
    with pytest.raises(AiUnavailable):
        _call(viewer)
    assert fake_openai.request_count == 0
    assert AiUsageLog.objects.get(user=viewer).error_code == "ai_unavailable"


def test_a_reply_lost_on_a_dropped_connection_is_asked_again_and_never_under_counted(viewer, settings, monkeypatch):
    """The connection drops after the script was sent: the script runs again the ordinary way (redis-py's retry), so
    the call goes ahead; the first run may have reserved too, which only over-counts until the period ends."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from ai_assist import quotas, redis_store

    _quota(settings)
    limits = quotas.limits_for("viewer")
    connection_class = redis_store.client().connection_pool.connection_class
    original = connection_class.read_response
    dropped = []

    def drop_once(self, *args, **kwargs):
        if not dropped:
            dropped.append(True)
            raise RedisConnectionError("Connection reset by peer")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(connection_class, "read_response", drop_once)
    admission = quotas.admit(
        user_id=str(viewer.pk), limits=limits, tokens=10, cost_nano=1, provider="openai", model="m"
    )
    assert dropped and admission.verdict == "closed"
    assert quotas.quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"] in (10, 20)


def _admission_clients() -> int:
    from ai_assist import redis_store

    return sum(1 for client in redis_store.client().client_list() if client.get("cmd") == "evalsha")


def test_admissions_of_a_thread_go_over_its_own_kept_connection_that_closes_with_the_thread(viewer, settings):
    """The admission's connection is the thread's own, not the pool's (whose get and release cost as much CPU as the
    command): a thread's admissions all use one connection, two threads use two, and a thread that ended closes its."""
    from ai_assist import quotas, redis_store

    _quota(settings)
    limits = quotas.limits_for("viewer")
    arguments = {
        "user_id": str(viewer.pk),
        "limits": limits,
        "tokens": 10,
        "cost_nano": 1,
        "provider": "o",
        "model": "m",
    }
    pool = redis_store.client().connection_pool
    connects: list[int] = []
    original_connect = pool.connection_class._connect

    def counted(self, *args, **kwargs):  # the socket is opened here
        connects.append(threading.get_ident())
        return original_connect(self, *args, **kwargs)

    def admit_three() -> None:
        for _ in range(3):
            assert quotas.admit(**arguments).verdict == "closed"

    quotas.admit(**arguments)  # the user's counters are seeded (through the pool) by the first admission
    before = _admission_clients()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pool.connection_class, "_connect", counted)
        patch.setattr(pool, "get_connection", lambda *a, **k: pytest.fail("an admission took a pool connection"))
        threads = [threading.Thread(target=admit_three) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(set(connects)) == sorted(thread.ident for thread in threads) and len(connects) == 2
    assert quotas.quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"] == 70
    del threads, thread
    import gc

    gc.collect()
    for _ in range(50):  # the server notices the closed sockets at once; allow it a moment
        if _admission_clients() <= before:
            break
        threading.Event().wait(0.05)
    assert _admission_clients() <= before


def test_a_second_admission_sent_before_the_first_reply_gets_a_connection_of_its_own(viewer, settings):
    from ai_assist import quotas

    _quota(settings)
    limits = quotas.limits_for("viewer")
    arguments = {"user_id": str(viewer.pk), "limits": limits, "provider": "o", "model": "m", "cost_nano": 1}
    first = quotas.admit_begin(tokens=5, **arguments)
    second = quotas.admit_begin(tokens=7, **arguments)
    first_connection, second_connection = first.sent.connection, second.sent.connection
    assert first_connection is not None and second_connection is not None and first_connection is not second_connection
    assert second.result().reservation.tokens == 7 and first.result().reservation.tokens == 5
    assert quotas.quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"] == 12
    # The thread keeps the connection given back first (the second's); the other one is closed, not kept as well.
    third = quotas.admit_begin(tokens=1, **arguments)
    assert third.sent.connection is second_connection and first_connection._sock is None
    assert third.result().reservation.tokens == 1
    assert quotas.quota_usage(user_id=str(viewer.pk), role="viewer")["tokens_used"] == 13

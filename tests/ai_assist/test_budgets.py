"""Pooled budgets per role, RC and task template: reserved atomically before the call, explained when they refuse,
warned about at 80 % and 100 % (one mail per budget and period), exported as gauges."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache

from ai_assist.budgets import budget_cache_clear
from ai_assist.models import AiBudget, AiUsageLog
from ai_assist.quotas import AiBudgetExceeded
from ai_assist.services import ai_bookkeeping_wait, ai_generate_text
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

FIGURES = {"release_candidate": "RC-9", "total": 10, "passed": 9, "failed": 1, "pass_rate": 90.0}
ROOMY = {"daily_tokens": 10**9, "cost_ceiling_usd": 10**6, "cost_period": "day", "burst_per_minute": 1000}


@pytest.fixture(autouse=True)
def _roomy_user_quotas(settings):
    """Only the pooled budgets limit these calls."""
    settings.AI_QUOTAS = {role: ROOMY for role in ("viewer", "reviewer", "admin")}


def _call(user, *, release_candidate=None):
    return ai_generate_text(
        user=user,
        task_id="report_summary",
        template_id="report_summary",
        variables=FIGURES,
        release_candidate=release_candidate,
    )


def _budget(*, name: str = "pool", limit_nano: int, period: str = "day", **target) -> AiBudget:
    budget = AiBudget.objects.create(name=name, period=period, limit_nano=limit_nano, **target)
    budget_cache_clear()
    return budget


def _one_call_figures(make_user) -> tuple[int, int]:
    """(reserved worst case, real cost) of one call, measured by a throwaway call whose traces are then removed."""
    result = _call(make_user("admin"))
    reserved = AiUsageLog.objects.get(pk=result.usage_log_id).reserved_cost_nano
    AiUsageLog.objects.all().delete()
    cache.clear()
    return reserved, result.cost_nano


TARGETS = {
    "role": lambda data: {"scope": "role", "role": "viewer"},
    "release_candidate": lambda data: {"scope": "release_candidate", "release_candidate": data["rc2"]},
    "template": lambda data: {"scope": "template", "template_id": "report_summary"},
}


@pytest.mark.parametrize("scope", sorted(TARGETS))
def test_it_lets_exactly_one_of_20_parallel_calls_through_a_budget_for_one(scope, make_user, fake_openai, release_data):
    reserved, real = _one_call_figures(make_user)
    fake_openai.reset()
    # One worst case fits; once it is settled at the real cost a second worst case does not.
    _budget(limit_nano=reserved + real - 1, **TARGETS[scope](release_data))
    fake_openai.default_delay = 0.3
    users = [make_user("viewer") for _ in range(20)]  # 20 different users: the budget is pooled
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(user):
        from django.db import connection

        barrier.wait()
        try:
            _call(user, release_candidate=release_data["rc2"])
            outcome = "success"
        except AiBudgetExceeded as error:
            outcome = error.code
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert fake_openai.request_count == 1
    assert sorted(outcomes) == ["ai_budget_exceeded"] * 19 + ["success"]
    assert AiUsageLog.objects.filter(outcome="refused", error_code="ai_budget_exceeded").count() == 19
    assert AuditEvent.objects.filter(action="ai.budget_refused").count() == 19


def test_it_says_which_budget_refused_how_much_is_left_and_when_it_resets(
    viewer_client, viewer, release_data, fake_openai
):
    _budget(
        name="RC-2026.11.2 AI spend",
        scope="release_candidate",
        release_candidate=release_data["rc2"],
        period="total",
        limit_nano=20_000,
    )
    _budget(name="Viewers per month", scope="role", role="viewer", period="month", limit_nano=5 * 10**9)
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), tick=True):
        response = viewer_client.post(
            "/api/v1/ai/assist",
            {"task": "triage_failure", "run": str(release_data["run"].pk)},
            content_type="application/json",
        )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "ai_budget_exceeded" and error["budget"] == "RC-2026.11.2 AI spend"
    assert (error["budget_scope"], error["budget_period"]) == ("release_candidate", "total")
    assert (error["left_usd"], error["limit_usd"], error["resets_at"]) == ("0.000020000", "0.000020000", None)
    assert (
        'release candidate budget "RC-2026.11.2 AI spend" has $0.000020 of $0.000020 in total left' in error["message"]
    )
    assert "more than the whole budget" in error["message"]
    assert "It does not reset." in error["message"]
    assert fake_openai.request_count == 0
    # The role budget resets at the month boundary; its refusal says so.
    AiBudget.objects.filter(scope="release_candidate").delete()
    AiBudget.objects.filter(scope="role").update(limit_nano=1)
    budget_cache_clear()
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), tick=True):
        page = viewer_client.post(
            "/ai/assist/stream",
            {"task": "triage_failure", "run": str(release_data["run"].pk)},
            HTTP_ACCEPT="application/json",
        )
    assert page.status_code == 429
    message = page.json()["error"]["message"]
    assert 'role budget "Viewers per month"' in message and "It resets at 2026-12-01 00:00 UTC." in message


def test_it_counts_a_month_budget_per_month_and_reseeds_a_lost_counter_from_the_logs(viewer, fake_openai):
    with time_machine.travel(datetime(2026, 11, 30, 23, 0, tzinfo=UTC), tick=True):
        first = _call(viewer)
        reserved = AiUsageLog.objects.get(pk=first.usage_log_id).reserved_cost_nano
        _budget(
            scope="template", template_id="report_summary", period="month", limit_nano=first.cost_nano + reserved - 1
        )
        cache.clear()  # Redis lost its data: the counter is seeded from the month's rows, not handed out afresh
        with pytest.raises(AiBudgetExceeded):
            _call(viewer)
    with time_machine.travel(datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC), tick=True):
        assert _call(viewer).outcome == "success"
    assert fake_openai.request_count == 2


def test_it_leaves_calls_outside_a_budgets_scope_alone(make_user, fake_openai, release_data):
    _budget(scope="role", role="reviewer", limit_nano=1)
    _budget(name="other rc", scope="release_candidate", release_candidate=release_data["rc1"], limit_nano=1)
    _budget(name="other template", scope="template", template_id="summarise_rc", limit_nano=1)
    assert _call(make_user("viewer"), release_candidate=release_data["rc2"]).outcome == "success"
    with pytest.raises(AiBudgetExceeded):
        _call(make_user("reviewer"))


def test_it_mails_the_admins_once_at_80_and_once_at_100_percent_per_period(make_user, fake_openai, settings):
    settings.AI_MAX_COMPLETION_TOKENS = 20  # a small worst case: the budget fills up call by call
    admin = make_user("admin", email="boss@example.com")
    viewer = make_user("viewer")
    probe = _call(admin)
    cost = probe.cost_nano
    reserved = AiUsageLog.objects.get(pk=probe.usage_log_id).reserved_cost_nano
    AiUsageLog.objects.all().delete()
    cache.clear()
    mail.outbox.clear()
    limit = 10 * cost + reserved
    _budget(name="Viewers daily", scope="role", role="viewer", limit_nano=limit)
    with time_machine.travel(datetime(2026, 11, 25, 9, 0, tzinfo=UTC), tick=True):
        calls = 0
        while True:
            try:
                _call(viewer)
            except AiBudgetExceeded:
                break
            calls += 1
            ai_bookkeeping_wait()
            assert len(mail.outbox) == (1 if calls * cost * 100 >= 80 * limit else 0), calls
        assert calls == 11  # admitted while the spend left room for one more worst case
        ai_bookkeeping_wait()
        assert [m.subject.split('"Viewers daily" ')[1] for m in mail.outbox] == ["at 80 %", "used up"]
        warning = mail.outbox[0]
        assert warning.to == ["boss@example.com"] and "resets at 2026-11-26 00:00 UTC" in warning.body
        with pytest.raises(AiBudgetExceeded):
            _call(viewer)
        assert len(mail.outbox) == 2  # one mail per threshold and period, however many refusals
    with time_machine.travel(datetime(2026, 11, 26, 9, 0, tzinfo=UTC), tick=True):
        _budget(name="Viewers tiny", scope="role", role="viewer", limit_nano=1)
        with pytest.raises(AiBudgetExceeded):
            _call(viewer)
    assert len(mail.outbox) == 3 and "used up" in mail.outbox[2].subject


def test_it_exports_budget_use_as_a_gauge(client, viewer, fake_openai):
    result = _call(viewer)
    _budget(name="Viewers daily", scope="role", role="viewer", limit_nano=4 * result.cost_nano)
    body = client.get("/metrics").content.decode()
    assert 'rp_ai_budget_used_ratio{budget="Viewers daily",period="day",scope="role"} 0.25' in body
    assert 'rp_ai_budget_limit_usd{budget="Viewers daily",period="day",scope="role"}' in body


def test_it_refuses_invalid_budgets_in_the_admin(admin_client):
    response = admin_client.post(
        "/admin/ai_assist/aibudget/add/",
        {"name": "x", "scope": "role", "role": "superuser", "period": "day", "limit_usd": "5", "enabled": "on"},
    )
    assert response.status_code == 200 and not AiBudget.objects.exists()
    response = admin_client.post(
        "/admin/ai_assist/aibudget/add/",
        {"name": "Reviewers", "scope": "role", "role": "reviewer", "period": "month", "limit_usd": "12.5"},
    )
    assert response.status_code == 302
    assert AiBudget.objects.get(name="Reviewers").limit_nano == 12_500_000_000


def test_it_tries_a_warning_again_when_the_mail_could_not_be_sent(make_user, fake_openai, monkeypatch):
    from ai_assist import budgets

    make_user("admin", email="boss@example.com")
    viewer = make_user("viewer")
    _budget(name="Viewers tiny", scope="role", role="viewer", limit_nano=1)
    real_send = budgets.send_mail

    def smtp_down(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(budgets, "send_mail", smtp_down)
    with pytest.raises(AiBudgetExceeded):
        _call(viewer)
    assert mail.outbox == []
    monkeypatch.setattr(budgets, "send_mail", real_send)
    for _ in range(2):
        with pytest.raises(AiBudgetExceeded):
            _call(viewer)
    assert [message.to for message in mail.outbox] == [["boss@example.com"]]

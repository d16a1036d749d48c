"""GET /api/v1/ai/usage/export.csv (admins) and the usage page: per day x model x user x task x RC, exact to the
nano-dollar, with the month's forecast."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from ai_assist.models import AiUsageLog
from ai_assist.selectors import EXPORT_COLUMNS, TOKEN_FIELDS, usage_forecast
from ai_assist.services import AiUnavailable, ai_generate_text
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

FIGURES = {"release_candidate": "RC-9", "total": 10, "passed": 9, "failed": 1, "pass_rate": 90.0}
CACHED = {
    "prompt_tokens": 1337,
    "completion_tokens": 77,
    "prompt_tokens_details": {"cached_tokens": 1024},
    "completion_tokens_details": {"reasoning_tokens": 13},
}


def _rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def _spend(make_user, fake_openai, release_data, settings):
    """Calls of two users, two tasks, two RCs, two models, with cache details, a failure and a refusal."""
    settings.AI_MAX_RETRIES = 0
    dana, lee = make_user("reviewer", email="dana@example.com"), make_user("viewer", email="=lee@example.com")
    for user, task, rc, usage in (
        (dana, "report:1", release_data["rc1"], CACHED),
        (dana, "report:2", release_data["rc1"], CACHED),  # same task label, day, model, user, RC: one row
        (dana, "report_summary", release_data["rc2"], None),
        (lee, "report_summary", None, CACHED),
    ):
        fake_openai.script([{"usage": usage}] if usage else [])
        ai_generate_text(user=user, task_id=task, template_id="report_summary", variables=FIGURES, release_candidate=rc)
    settings.AI_MODEL = "gpt-4o"
    fake_openai.script([{"usage": CACHED}])
    ai_generate_text(user=lee, task_id="report_summary", template_id="report_summary", variables=FIGURES)
    fake_openai.script([{"status": 500}])
    with pytest.raises(AiUnavailable):
        ai_generate_text(user=lee, task_id="report_summary", template_id="report_summary", variables=FIGURES)
    settings.AI_MODEL = "gpt-9-unpriced"
    with pytest.raises(AiUnavailable):
        ai_generate_text(user=lee, task_id="report_summary", template_id="report_summary", variables=FIGURES)
    return dana, lee


def test_it_exports_rows_whose_totals_equal_the_usage_logs_to_the_nano_dollar(
    admin_client, make_user, fake_openai, release_data, settings
):
    _spend(make_user, fake_openai, release_data, settings)
    response = admin_client.get("/api/v1/ai/usage/export.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="ai-usage-last-30-days-')
    rows = _rows(response)
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    logs = list(AiUsageLog.objects.all())
    assert sum(int(row["cost_nano"]) for row in rows) == sum(log.cost_nano for log in logs) > 0
    for field in TOKEN_FIELDS:
        assert sum(int(row[field]) for row in rows) == sum(getattr(log, field) for log in logs), field
    assert sum(int(row["calls"]) for row in rows) == len(logs) == 7
    assert sum(int(row["failures"]) for row in rows) == 1 and sum(int(row["refused"]) for row in rows) == 1
    keys = Counter((row["day"], row["model"], row["user"], row["task"], row["release_candidate"]) for row in rows)
    assert set(keys.values()) == {1}  # one row per day x model x user x task x RC
    grouped = next(row for row in rows if row["task"] == "report" and row["user"] == "dana@example.com")
    assert (grouped["calls"], grouped["cached_prompt_tokens"], grouped["reasoning_tokens"]) == ("2", "2048", "26")
    one_call = 313 * 150 + 1024 * 75 + 64 * 600 + 13 * 600
    assert grouped["cost_nano"] == str(2 * one_call) and grouped["cost_usd"] == f"0.000{2 * one_call:06d}"
    assert {row["user"] for row in rows} == {"dana@example.com", "'=lee@example.com"}  # formula neutralised
    assert AuditEvent.objects.filter(action="export.csv", resource="ai_usage").count() == 1


def test_it_exports_one_calendar_month(admin_client, admin_user, settings):
    settings.AI_PROVIDER = "offline"
    for moment in (datetime(2026, 10, 31, 23, 59, tzinfo=UTC), datetime(2026, 11, 1, 0, 0, 1, tzinfo=UTC)):
        with time_machine.travel(moment, tick=False):
            ai_generate_text(user=admin_user, task_id="report_summary", template_id="report_summary", variables={})
    with time_machine.travel(datetime(2026, 11, 20, tzinfo=UTC), tick=False):
        rows = _rows(admin_client.get("/api/v1/ai/usage/export.csv?month=2026-11"))
        bad = admin_client.get("/api/v1/ai/usage/export.csv?month=November")
    assert [(row["day"], row["calls"]) for row in rows] == [("2026-11-01", "1")]
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["month"]


@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_it_refuses_the_export_to_everyone_but_admins(client, make_user, role):
    assert client.get("/api/v1/ai/usage/export.csv").status_code == 401
    client.force_login(make_user(role))
    response = client.get("/api/v1/ai/usage/export.csv")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert not AuditEvent.objects.filter(action="export.csv").exists()


def test_it_forecasts_the_month_from_the_last_seven_days(admin_user, viewer):
    def row(day: int, cost_nano: int, user=admin_user):
        AiUsageLog.objects.create(
            user=user,
            task_id="t",
            template_id="t",
            provider="openai",
            model="gpt-4o-mini",
            outcome="success",
            cost_nano=cost_nano,
            created_at=datetime(2026, 11, day, 10, 0, tzinfo=UTC),
        )

    row(2, 5_000_000)
    for day in range(15, 22):
        row(day, 1_000_000)
    row(20, 999, user=viewer)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    forecast = usage_forecast(user=admin_user, now=now)
    # 9.5 days left at the last 7 days' 1_000_999 / 7 a day (every user's calls, for an admin).
    assert (forecast["spent_nano"], forecast["last_7_days_nano"]) == (12_000_999, 7_000_999)
    assert forecast["forecast_nano"] == 12_000_999 + round(7_000_999 * 9.5 / 7)
    own = usage_forecast(user=viewer, now=now)
    assert (own["spent_nano"], own["forecast_nano"]) == (999, 999 + round(999 * 9.5 / 7))
    assert usage_forecast(user=admin_user, now=now + timedelta(days=12))["month"] == "2026-12"


def test_it_shows_token_kinds_forecast_budgets_and_the_export_link_on_the_usage_page(
    admin_client, admin_user, fake_openai
):
    from ai_assist.budgets import budget_cache_clear
    from ai_assist.models import AiBudget

    AiBudget.objects.create(name="Admins monthly", scope="role", role="admin", period="month", limit_nano=10**9)
    budget_cache_clear()
    fake_openai.script([{"usage": CACHED}])
    ai_generate_text(user=admin_user, task_id="report_summary", template_id="report_summary", variables=FIGURES)
    page = admin_client.get("/ai/usage/").content.decode()
    assert 'id="ai-token-kinds"' in page and "<td>1024</td>" in page and "<td>13</td>" in page
    assert 'id="ai-forecast"' in page and "forecast for the month" in page
    assert 'id="ai-budgets"' in page and "Admins monthly" in page
    assert 'href="/api/v1/ai/usage/export.csv?days=30"' in page


def test_it_hides_budgets_and_the_export_from_viewers_on_the_usage_page(viewer_client, viewer, settings):
    settings.AI_PROVIDER = "offline"
    ai_generate_text(user=viewer, task_id="report_summary", template_id="report_summary", variables=FIGURES)
    page = viewer_client.get("/ai/usage/").content.decode()
    assert 'id="ai-forecast"' in page and 'id="ai-export-link"' not in page and 'id="ai-budgets"' not in page


def test_it_backfills_exact_costs_on_rows_written_before_nano_dollars():
    import importlib
    from types import SimpleNamespace

    from bson import ObjectId
    from django.db import connection

    migration = importlib.import_module("ai_assist.migrations.0005_usage_cost_nano_backfill")
    old_id = ObjectId()
    connection.database["aiUsageLogs"].insert_one(
        {"_id": old_id, "cost_usd": 0.0000264, "reserved_cost_usd": 0.0004812, "created_at": datetime.now(UTC)}
    )
    migration.backfill(None, SimpleNamespace(connection=connection))
    row = connection.database["aiUsageLogs"].find_one({"_id": old_id})
    assert (row["cost_nano"], row["reserved_cost_nano"]) == (26_400, 481_200)

"""ai_generate_text: the contract the reports app uses; offline and through the real SDK against the fake server."""

from __future__ import annotations

import pytest

from ai_assist.models import AiUsageLog
from ai_assist.services import ai_generate_text

pytestmark = pytest.mark.django_db

FIGURES = {
    "release_candidate": "RC-2026.11.2",
    "total": 200,
    "passed": 180,
    "failed": 15,
    "pending": 5,
    "pass_rate": 90.0,
    "by_category": {"auth": "6 failing", "billing": "4 failing"},
    "previous": {"pass_rate": 93.5},
}


def test_it_answers_report_summary_offline_deterministically(viewer, settings):
    settings.AI_PROVIDER = "offline"
    first = ai_generate_text(user=viewer, task_id="report_summary", template_id="report_summary", variables=FIGURES)
    second = ai_generate_text(user=viewer, task_id="report_summary", template_id="report_summary", variables=FIGURES)
    assert first.text == second.text
    assert first.provider == "offline" and first.model == "offline" and first.cost == 0
    assert "Summary" in first.text and "Risks" in first.text and "Recommendation" in first.text
    assert "90.0%" in first.text and "15 failing" in first.text
    assert "Release with caution" in first.text and "down" in first.text
    log = AiUsageLog.objects.get(pk=first.usage_log_id)
    assert (log.outcome, log.template_id, log.template_version, log.task_id) == (
        "success",
        "report_summary",
        1,
        "report_summary",
    )
    assert log.prompt_tokens == first.prompt_tokens > 0


def test_it_calls_the_provider_through_the_sdk_and_logs_price_and_tokens(viewer, fake_openai, release_data):
    result = ai_generate_text(
        user=viewer,
        task_id="report_summary",
        template_id="report_summary",
        variables=FIGURES,
        release_candidate=release_data["rc2"],
    )
    assert fake_openai.request_count == 1
    assert result.text.startswith("Likely cause") and result.provider == "openai" and result.model == "gpt-4o-mini"
    assert result.prompt_tokens == 120
    assert result.cost == pytest.approx(120 / 1000 * 0.00015 + result.completion_tokens / 1000 * 0.0006)
    log = AiUsageLog.objects.get(pk=result.usage_log_id)
    assert log.release_candidate_id == release_data["rc2"].pk and log.release_candidate_name == "RC-2026.11.2"
    assert (log.price_prompt_per_1k, log.price_completion_per_1k) == (0.00015, 0.0006)
    assert log.cost_usd == pytest.approx(result.cost) and log.attempts == 1 and log.latency_ms > 0
    assert "90.0" in log.prompt_redacted and log.response_redacted == result.text
    sent = fake_openai.requests[0]
    assert sent["model"] == "gpt-4o-mini" and sent["messages"][1]["content"].count("pass_rate: 90.0") == 1


REPORT_FIGURES = {
    "figures": {
        "release_candidate": "RC-2026.11.2",
        "scope": "all suites",
        "totals": {"pass": 170, "fail": 22, "pending": 8, "total": 200, "pass_rate": 88.5},
        "release_gate": "NO-GO",
        "gate_reasons": ["pass rate below 95"],
        "by_category": [
            {"name": "auth", "pass": 40, "fail": 12, "pending": 0, "total": 52, "pass_rate": 76.9},
            {"name": "billing", "pass": 60, "fail": 0, "pending": 2, "total": 62, "pass_rate": 100.0},
            {"name": "search", "pass": 70, "fail": 10, "pending": 6, "total": 86, "pass_rate": 87.5},
        ],
        "baseline": "RC-2026.11.1",
        "delta_counts": {"new_failures": 3, "fixed": 1},
        "new_failures": ["LOGIN-001 Sign in", "SEARCH-7 Facets"],
        "flaky_cases": ["PAY-3"],
        "open_mantis_issues": 4,
    }
}


def test_it_summarises_the_reports_figures_citing_only_given_numbers(viewer, settings):
    import re

    settings.AI_PROVIDER = "offline"
    text = ai_generate_text(
        user=viewer, task_id="report:abc", template_id="report_summary", variables=REPORT_FIGURES
    ).text
    assert "a pass rate of 88.5%, 22 failing and 8 pending" in text
    assert "auth: 12 failing, pass rate 76.9%" in text and "billing" not in text.split("Risks")[1]
    assert "New failure: LOGIN-001 Sign in" in text and "Flaky cases: PAY-3" in text
    assert "Do not release yet" in text and "Release gate: NO-GO." in text
    given = set(re.findall(r"\d+(?:\.\d+)?", str(REPORT_FIGURES)))
    cited = set(re.findall(r"\d+(?:\.\d+)?", text))
    assert cited <= given, cited - given

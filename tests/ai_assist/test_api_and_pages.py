"""The assistant page, its streaming endpoint, the AI API and the usage page, per role."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from ai_assist.models import AiUsageLog

pytestmark = pytest.mark.django_db


def _events(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_it_creates_the_usage_log_ttl_index():
    indexes = connection.database["aiUsageLogs"].index_information()
    ttl = [spec for spec in indexes.values() if "expireAfterSeconds" in spec]
    assert ttl == [{**ttl[0], "key": [("created_at", 1)], "expireAfterSeconds": 90 * 24 * 3600}]


def test_it_answers_the_api_offline_with_a_label(viewer_client, viewer, release_data, settings):
    settings.AI_PROVIDER = "offline"
    response = viewer_client.post(
        "/api/v1/ai/assist",
        {"task": "triage_failure", "run": str(release_data["run"].pk)},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["offline"] is True and body["provider"] == "offline" and body["template"] == "triage_failure"
    assert "Regression: the case passed on RC-2026.11.1" in body["text"]
    assert "1 other case(s) in auth also fail" in body["text"]
    assert "[REDACTED_EMAIL]" in body["text"]  # the run notes were redacted before any provider saw them
    log = AiUsageLog.objects.get(pk=body["usage_log_id"])
    assert (log.user_id, log.release_candidate_id, log.outcome) == (viewer.pk, release_data["rc2"].pk, "success")


def test_it_streams_the_api_answer_as_ndjson_events(viewer_client, release_data, fake_openai):
    response = viewer_client.post(
        "/api/v1/ai/assist",
        {"task": "draft_bug_report", "run": str(release_data["run"].pk), "stream": True},
        content_type="application/json",
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    events = _events(response)
    assert events[0]["type"] == "meta" and events[0]["offline"] is False and events[0]["model"] == "gpt-4o-mini"
    text = "".join(event["text"] for event in events if event["type"] == "delta")
    assert text == fake_openai.default_text and len([e for e in events if e["type"] == "delta"]) > 3
    assert events[-1]["type"] == "done" and events[-1]["prompt_tokens"] == 120
    log = AiUsageLog.objects.get(pk=events[0]["usage_log_id"])
    assert (log.outcome, log.streamed, log.response_redacted) == ("success", True, text)


def test_it_reports_a_stream_broken_by_the_provider(viewer_client, release_data, fake_openai, settings):
    settings.AI_MAX_RETRIES = 0
    fake_openai.script([{"fail_after_chunks": 3}])
    response = viewer_client.post(
        "/api/v1/ai/assist",
        {"task": "draft_bug_report", "run": str(release_data["run"].pk), "stream": True},
        content_type="application/json",
    )
    events = _events(response)
    assert events[-1]["type"] == "error" and events[-1]["code"] == "ai_unavailable"
    log = AiUsageLog.objects.get(pk=events[0]["usage_log_id"])
    assert log.outcome == "failed" and log.response_redacted.startswith("Likely cause: a")


def test_it_rejects_bad_input_with_coded_errors_and_no_log(viewer_client, release_data):
    cases = [
        ({"task": "write_poem", "run": str(release_data["run"].pk)}, 400, "ai_unknown_task"),
        ({"task": "triage_failure"}, 400, "validation_failed"),
        ({"task": "triage_failure", "run": "not-an-id"}, 404, "not_found"),
        ({"task": "draft_steps", "case": "0123456789abcdef01234567"}, 404, "not_found"),
    ]
    for payload, status, code in cases:
        response = viewer_client.post("/api/v1/ai/assist", payload, content_type="application/json")
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), payload
    assert AiUsageLog.objects.count() == 0


def test_it_requires_authentication(client, release_data):
    response = client.post(
        "/api/v1/ai/assist",
        {"task": "summarise_rc", "rc": str(release_data["rc2"].pk)},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert client.get("/ai/assist/?task=summarise_rc").status_code == 302
    assert AiUsageLog.objects.count() == 0


def test_it_shows_own_usage_to_viewers_and_everyone_to_admins(client, make_user, release_data, settings):
    settings.AI_PROVIDER = "offline"
    viewer, other, admin = make_user("viewer"), make_user("reviewer"), make_user("admin")
    for user in (viewer, other):
        client.force_login(user)
        client.post(
            "/api/v1/ai/assist",
            {"task": "summarise_rc", "rc": str(release_data["rc2"].pk)},
            content_type="application/json",
        )
    client.force_login(viewer)
    own = client.get("/api/v1/ai/usage").json()
    assert own["scope"] == "own" and own["totals"]["calls"] == 1
    assert [row["key"] for row in own["user"]] == [viewer.email]
    assert own["rc"][0]["key"] == "RC-2026.11.2" and own["task"][0]["key"] == "summarise_rc"
    ignored = client.get(f"/api/v1/ai/usage?user={other.pk}").json()  # a viewer cannot look at someone else
    assert ignored["totals"]["calls"] == 1 and ignored["user"][0]["key"] == viewer.email
    client.force_login(admin)
    everyone = client.get("/api/v1/ai/usage").json()
    assert everyone["scope"] == "everyone" and everyone["totals"]["calls"] == 2
    assert {row["key"] for row in everyone["user"]} == {viewer.email, other.email}
    assert client.get(f"/api/v1/ai/usage?user={other.pk}").json()["totals"]["calls"] == 1


def test_it_renders_the_assist_page_with_the_offline_label(viewer_client, release_data, settings):
    settings.AI_PROVIDER = "offline"
    response = viewer_client.get(f"/ai/assist/?task=triage_failure&run={release_data['run'].pk}")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="ai-offline-label"' in page and "LOGIN-001 on RC-2026.11.2" in page
    assert 'id="ai-assist-config"' in page and "<script>" not in page


def test_it_streams_into_the_page_endpoint_and_refuses_with_json(viewer_client, release_data, settings):
    settings.AI_PROVIDER = "offline"
    data = {"task": "summarise_rc", "rc": str(release_data["rc2"].pk)}
    response = viewer_client.post("/ai/assist/stream", data, HTTP_ACCEPT="application/json")
    events = _events(response)
    assert events[0]["offline"] is True and "pass rate 0.0%" in "".join(e.get("text", "") for e in events)
    settings.AI_QUOTAS = {
        role: {"daily_tokens": 5, "cost_ceiling_usd": 1, "cost_period": "day", "burst_per_minute": 5}
        for role in ("viewer", "reviewer", "admin")
    }
    refused = viewer_client.post("/ai/assist/stream", data, HTTP_ACCEPT="application/json")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "ai_quota_exceeded"


def test_it_renders_the_usage_page_with_breakers_and_charts(admin_client, settings, release_data):
    settings.AI_PROVIDER = "offline"
    admin_client.post(
        "/api/v1/ai/assist",
        {"task": "summarise_rc", "rc": str(release_data["rc2"].pk)},
        content_type="application/json",
    )
    page = admin_client.get("/ai/usage/").content.decode()
    assert 'id="ai-breakers"' in page and "closed" in page and 'id="ai-usage-data"' in page
    assert "summarise_rc" in page and "RC-2026.11.2" in page and "all users" in page


def test_it_shows_a_viewer_only_their_own_calls_on_the_usage_page(client, make_user, release_data, settings):
    settings.AI_PROVIDER = "offline"
    mine, theirs = make_user("viewer", email="mine@example.com"), make_user("viewer", email="theirs@example.com")
    for user in (mine, theirs):
        client.force_login(user)
        client.post(
            "/api/v1/ai/assist",
            {"task": "draft_steps", "case": str(release_data["case"].pk)},
            content_type="application/json",
        )
    page = client.get("/ai/usage/").content.decode()
    assert "theirs@example.com" in page and "mine@example.com" not in page
    assert "your calls only" in page and "Tokens today:" in page


def test_it_logs_streams_the_reader_abandoned_without_blaming_the_provider(viewer, release_data, fake_openai):
    from ai_assist.breaker import breaker_state
    from ai_assist.quotas import quota_usage
    from ai_assist.services import ai_stream_text
    from ai_assist.streaming import ndjson_events

    def admitted():
        return ai_stream_text(
            user=viewer,
            task_id="summarise_rc",
            template_id="summarise_rc",
            variables={"release_candidate": {"name": "RC-2"}, "counts": {"fail": 1}},
        )

    never_read = ndjson_events(admitted())
    meta = json.loads(next(never_read))
    never_read.close()
    half_read = ndjson_events(admitted())
    next(half_read)
    first_piece = json.loads(next(half_read))
    half_read.close()
    abandoned = AiUsageLog.objects.get(pk=meta["usage_log_id"])
    assert (abandoned.outcome, abandoned.error_code, abandoned.prompt_tokens) == ("failed", "ai_stream_abandoned", 0)
    aborted = AiUsageLog.objects.exclude(pk=meta["usage_log_id"]).get()
    assert aborted.error_code == "ai_stream_aborted" and aborted.response_redacted == first_piece["text"]
    assert fake_openai.request_count == 1
    assert breaker_state(provider="openai", model="gpt-4o-mini").failures == 0
    usage = quota_usage(user_id=str(viewer.pk), role="viewer")
    assert usage["tokens_used"] == aborted.total_tokens  # nothing left reserved


def test_it_shows_usage_logs_read_only_in_the_admin(admin_client, admin_user, settings):
    from ai_assist.services import ai_generate_text

    settings.AI_PROVIDER = "offline"
    result = ai_generate_text(
        user=admin_user, task_id="report_summary", template_id="report_summary", variables={"total": 3}
    )
    listing = admin_client.get("/admin/ai_assist/aiusagelog/")
    assert listing.status_code == 200 and "report_summary" in listing.content.decode()
    delete = admin_client.post(f"/admin/ai_assist/aiusagelog/{result.usage_log_id}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert AiUsageLog.objects.filter(pk=result.usage_log_id).exists()

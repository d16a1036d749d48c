"""Long-lived CI tokens: created on the account page (shown once) and in the admin, stored hashed, scoped to the
results import and bulk runs, revocable, audited; a CI-style upload of a real pytest report with one."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts import services, tokens
from accounts.models import ApiToken
from audit.models import AuditEvent
from releases.models import TestRun
from tests.imports.junit_helpers import fixture_bytes, pytest_report

pytestmark = pytest.mark.django_db

JUNIT = "/api/v1/imports/junit"


def _bearer(text: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {text}")


def _upload(client: Client, data: bytes, **fields):
    return client.post(
        JUNIT, {"file": SimpleUploadedFile("report.xml", data), "rc": "RC-1", "product": "Web", **fields}
    )


def test_it_creates_a_token_on_the_account_page_and_shows_it_once(reviewer_client, reviewer):
    response = reviewer_client.post(reverse("accounts:api_token_create"), {"name": "GitLab CI web"})
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    text = response.context["new_token"]
    assert text.startswith("rpt_") and text in response.content.decode()
    token = ApiToken.objects.get()
    assert token.user == reviewer and token.token_hash == tokens.ci_token_hash(text)
    assert text not in str(ApiToken.objects.values().get())  # only the hash is stored
    page = reviewer_client.get(reverse("accounts:security")).content.decode()
    assert "GitLab CI web" in page and text not in page
    event = AuditEvent.objects.get(action="auth.api_token_create")
    assert text not in str(event.metadata) and event.metadata["prefix"] == token.prefix


def test_it_refuses_tokens_to_viewers(viewer_client):
    response = viewer_client.post(reverse("accounts:api_token_create"), {"name": "x"})
    assert response.status_code == 403
    assert ApiToken.objects.count() == 0


def test_it_uploads_a_real_pytest_report_with_the_token(reviewer, tmp_path):
    _token, text = services.api_token_create(actor=reviewer, name="ci")
    response = _upload(_bearer(text), pytest_report(tmp_path))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "succeeded" and body["kind"] == "junit"
    assert body["progress_url"] == f"/api/v1/imports/{body['id']}"
    assert TestRun.objects.count() == 9
    assert {run.executed_by_id for run in TestRun.objects.all()} == {reviewer.pk}
    event = AuditEvent.objects.get(action="import.junit")
    assert event.metadata["ci_prefix"] == ApiToken.objects.get().prefix
    # The progress URL answers to a session or JWT (the token is scoped to the upload and bulk runs only).
    assert _bearer(text).get(body["progress_url"]).status_code == 401
    assert ApiToken.objects.get().last_used_at is not None


def test_it_accepts_the_token_only_on_its_routes(reviewer):
    _token, text = services.api_token_create(actor=reviewer, name="ci")
    client = _bearer(text)
    assert client.get("/api/v1/tests").status_code == 401
    assert client.post("/api/v1/imports/csv", {}).status_code == 401
    assert client.get("/api/v1/ai/usage").status_code == 401


def test_it_refuses_a_revoked_token(reviewer):
    token, text = services.api_token_create(actor=reviewer, name="ci")
    services.api_token_revoke(actor=reviewer, token_id=str(token.pk))
    response = _upload(_bearer(text), fixture_bytes("gradle.xml"))
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    assert TestRun.objects.count() == 0
    assert AuditEvent.objects.filter(action="auth.api_token_revoke").count() == 1


def test_it_revokes_from_the_account_page(reviewer_client, reviewer):
    token, text = services.api_token_create(actor=reviewer, name="ci")
    response = reviewer_client.post(reverse("accounts:api_token_revoke", args=[token.pk]))
    assert response.status_code == 302
    assert _upload(_bearer(text), fixture_bytes("gradle.xml")).status_code == 401


def test_it_refuses_someone_elses_token_to_revoke(reviewer, make_user):
    token, _text = services.api_token_create(actor=reviewer, name="ci")
    other = make_user("reviewer")
    client = Client()
    client.force_login(other)
    assert client.post(reverse("accounts:api_token_revoke", args=[token.pk])).status_code == 404
    assert ApiToken.objects.get().revoked_at is None


def test_it_stops_working_when_the_user_is_demoted(reviewer, admin_user):
    _token, text = services.api_token_create(actor=reviewer, name="ci")
    services.user_change_role(actor=admin_user, user=reviewer, role="viewer", request=None)
    assert _upload(_bearer(text), fixture_bytes("gradle.xml")).status_code == 401


@pytest.mark.parametrize(
    "text",
    ["rpt_", "rpt_AAAAAAAAAAAA_" + "x" * 43, "not-a-token", "rpt_short_secret"],
    ids=["bare", "unknown", "junk", "bad"],
)
def test_it_refuses_bad_tokens(text):
    assert _upload(_bearer(text), fixture_bytes("gradle.xml")).status_code == 401


def test_an_admin_creates_and_revokes_tokens_in_the_admin(admin_client, reviewer):
    response = admin_client.post(
        reverse("admin:accounts_apitoken_add"), {"user": str(reviewer.pk), "name": "nightly"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    shown = [str(message) for message in response.context["messages"]]
    assert any("rpt_" + token.prefix in message for message in shown)
    response = admin_client.post(
        reverse("admin:accounts_apitoken_changelist"), {"action": "revoke", "_selected_action": [str(token.pk)]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None

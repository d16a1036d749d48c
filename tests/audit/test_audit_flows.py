"""Each audited flow, driven through its public entry point (browser pages or the JSON API), writes exactly one
event of its action with the right actor, resource, outcome, IP, user agent and request id; afterwards no secret
used in the flows appears anywhere in the trail.

The events themselves are written by the apps' services (accounts, releases, imports, reports, ai_assist); this
file checks them from the outside, the way an auditor reads the trail.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify, audit_last_sequence
from tests.ai_assist.conftest import fake_openai, fake_openai_server, release_data  # noqa: F401 - fixtures

AGENT = "audit-flow-tests/1.0"
PASSWORD = "correct-horse-battery-9"


@dataclass
class Seen:
    event: AuditEvent | None = None
    others: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def exactly_one(
    action: str, *, outcome: str = "success", actor=None, actor_email: str | None = None, web=True, **fields
):
    """The block writes exactly one `action` event with these fields; `web` events also carry the request's IP
    and user agent (events written by a Celery worker have no request)."""
    before = audit_last_sequence()
    seen = Seen()
    yield seen
    new = list(AuditEvent.objects.filter(sequence__gt=before).order_by("sequence"))
    matching = [event for event in new if event.action == action]
    assert len(matching) == 1, f"{action}: expected one event, got {[(e.action, e.outcome) for e in new]}"
    event = seen.event = matching[0]
    seen.others = [(e.action, e.outcome) for e in new if e is not event]
    assert event.outcome == outcome
    if actor is not None:
        assert (event.actor_id, event.actor_email) == (str(actor.pk), actor.email)
    if actor_email is not None:
        assert event.actor_email == actor_email
    for name, value in fields.items():
        assert getattr(event, name) == value, name
    if web:
        assert event.ip == "127.0.0.1"
        assert event.user_agent == AGENT
        assert len(event.request_id) == 32


def browser(user=None) -> Client:
    client = Client(HTTP_USER_AGENT=AGENT)
    if user is not None:
        client.force_login(user)
    return client


def api(token: str | None = None) -> Client:
    headers = {"HTTP_USER_AGENT": AGENT}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return Client(**headers)


def post_json(client: Client, path: str, body: dict):
    return client.post(path, json.dumps(body), content_type="application/json")


def api_login(user) -> dict:
    response = post_json(api(), "/api/v1/auth/login", {"email": user.email, "password": user.raw_password})
    assert response.status_code == 200, response.content
    return response.json()


# --- authentication ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_browser_login_success_failure_and_logout(make_user):
    user = make_user("viewer", password=PASSWORD)
    client = browser()
    with exactly_one("auth.login", outcome="failure", actor_email=user.email, actor_id="") as seen:
        response = client.post("/accounts/login/", {"login": user.email.upper(), "password": "wrong-password-1"})
    assert response.status_code == 200
    assert seen.event.request_id == response["X-Request-ID"]
    assert seen.event.metadata.get("channel") == "browser"

    with exactly_one("auth.login", actor=user) as seen:
        response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert seen.event.request_id == response["X-Request-ID"]

    with exactly_one("auth.logout", actor=user):
        assert client.post("/accounts/logout/").status_code == 302


@pytest.mark.django_db
def test_lockout_after_five_failures_is_one_denied_event(make_user):
    user = make_user("viewer", password=PASSWORD)
    client = browser()
    for _ in range(5):
        client.post("/accounts/login/", {"login": user.email, "password": "wrong-password-1"})
    with exactly_one("auth.lockout", outcome="denied", actor_email=user.email):
        response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 200  # refused even with the right password
    assert not AuditEvent.objects.filter(action="auth.login", outcome="success").exists()


@pytest.mark.django_db
def test_api_login_refresh_token_reuse_and_logout(make_user, settings):
    user = make_user("reviewer", password=PASSWORD)
    with exactly_one("auth.login", outcome="failure", actor_email=user.email):
        response = post_json(api(), "/api/v1/auth/login", {"email": user.email, "password": "wrong-password-1"})
    assert response.status_code == 401

    with exactly_one("auth.login", actor=user) as seen:
        tokens = api_login(user)
    assert seen.event.metadata.get("channel") == "api"

    rotated = post_json(api(), "/api/v1/auth/refresh", {"refresh": tokens["refresh"]})
    assert rotated.status_code == 200
    # No grace window for parallel refreshes of one device here (that answers 409; tests/accounts/test_tokens.py).
    settings.JWT_REFRESH_REUSE_GRACE_SECONDS = 0
    with exactly_one("auth.token_reuse", outcome="denied", actor=user):
        reused = post_json(api(), "/api/v1/auth/refresh", {"refresh": tokens["refresh"]})
    assert reused.status_code == 401

    fresh = api_login(user)
    with exactly_one("auth.logout", actor=user):
        response = post_json(api(fresh["access"]), "/api/v1/auth/logout", {"refresh": fresh["refresh"]})
    assert response.status_code in (200, 204)


@pytest.mark.django_db
def test_password_reset_request_and_completion(make_user):
    user = make_user("viewer", password=PASSWORD)
    client = browser()
    with exactly_one("auth.password_reset_request"):
        response = client.post("/accounts/password/reset/", {"email": user.email})
    assert response.status_code == 302
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+)", mail.outbox[-1].body).group(1)
    form_page = client.get(link, follow=True)
    new_password = "another-correct-horse-7"
    with exactly_one("auth.password_reset", actor=user, resource=f"user:{user.pk}"):
        response = client.post(
            form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
            {"password1": new_password, "password2": new_password},
        )
    assert response.status_code == 302


@pytest.mark.django_db
def test_signup_email_verification(client):
    email = "new-person@example.com"
    signup = browser().post("/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD})
    assert signup.status_code == 302
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+)", mail.outbox[-1].body).group(1)
    with exactly_one("auth.email_verified", actor_email=email):
        response = browser().post(link)
    assert response.status_code == 302


@pytest.mark.django_db
def test_mfa_enrolment(make_user):
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    user = make_user("viewer", password=PASSWORD)
    client = browser()
    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    page = client.get("/accounts/2fa/totp/activate/")
    if page.status_code == 302:  # recent authentication required first
        client.post("/accounts/reauthenticate/", {"password": PASSWORD})
        page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    import time

    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    before = audit_last_sequence()
    response = client.post("/accounts/2fa/totp/activate/", {"code": code})
    assert response.status_code == 302
    added = AuditEvent.objects.filter(sequence__gt=before, action="mfa.added")
    # Enrolling TOTP creates two authenticators (the TOTP secret and the recovery codes): one event each.
    assert sorted(event.metadata["type"] for event in added) == ["recovery_codes", "totp"]
    for event in added:
        assert (event.actor_id, event.resource, event.outcome) == (str(user.pk), f"user:{user.pk}", "success")
        assert (event.ip, event.user_agent) == ("127.0.0.1", AGENT)

    before = audit_last_sequence()
    assert client.post("/accounts/2fa/totp/deactivate/").status_code == 302
    removed = AuditEvent.objects.filter(sequence__gt=before, action="mfa.removed")
    assert sorted(event.metadata["type"] for event in removed) == ["recovery_codes", "totp"]
    assert {(event.actor_id, event.ip) for event in removed} == {(str(user.pk), "127.0.0.1")}


# --- user administration ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_role_change_and_activation_by_an_admin(make_user):
    admin = make_user("admin")
    target = make_user("viewer")
    client = browser(admin)
    with exactly_one("user.role_change", actor=admin, resource=f"user:{target.pk}"):
        response = client.post(f"/account/users/{target.pk}/role/", {"role": "reviewer"})
    assert response.status_code == 302
    with exactly_one("user.deactivate", actor=admin, resource=f"user:{target.pk}"):
        client.post(f"/account/users/{target.pk}/active/", {"active": ""})
    with exactly_one("user.activate", actor=admin, resource=f"user:{target.pk}"):
        client.post(f"/account/users/{target.pk}/active/", {"active": "on"})


# --- data: import, export, destructive action ----------------------------------------------------------------------


@pytest.fixture
def case(make_user):
    from releases.models import TestCase, TestSuite

    reviewer = make_user("reviewer")
    suite = TestSuite.objects.create(name="Audit suite", product="Report Platform")
    token = api_login(reviewer)["access"]
    payload = {"suite": str(suite.pk), "key": "AUD-1", "title": "Audited case", "category": "smoke", "owner": "qa"}
    with exactly_one("case.create", actor=reviewer) as seen:
        response = post_json(api(token), "/api/v1/tests", payload)
    assert response.status_code == 201, response.content
    created = TestCase.objects.get(pk=response.json()["id"])
    assert seen.event.resource == f"case:{created.pk}"
    return created


@pytest.mark.django_db
def test_csv_import_and_exports(make_user, monkeypatch):
    from imports import services as import_services

    reviewer = make_user("reviewer")
    admin = make_user("admin")
    monkeypatch.setattr(import_services, "import_job_enqueue", lambda job_id: None)  # the worker's part runs below
    data = (
        "product,suite,key,title,category,task,owner,priority,tags\r\nRP,Suite A,IMP-1,Imported,smoke,login,qa,2,a\r\n"
    )
    upload = SimpleUploadedFile("cases.csv", data.encode(), content_type="text/csv")
    response = browser(reviewer).post("/api/v1/imports/csv", {"file": upload})
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    with exactly_one("import.csv", actor=reviewer, resource=f"import:{job_id}", web=False) as seen:
        import_services.import_job_process(job_id=job_id, worker="audit-test")
    assert seen.event.metadata["rows"] == 1

    rejected = SimpleUploadedFile("cases.csv", b"not,a,known,header\r\n1,2,3,4\r\n", content_type="text/csv")
    with exactly_one("import.csv", outcome="failure", actor=reviewer):
        assert browser(reviewer).post("/api/v1/imports/csv", {"file": rejected}).status_code == 400

    with exactly_one("export.csv", actor=admin, resource="cases"):
        exported = browser(admin).get("/api/v1/exports/cases.csv")
    assert exported.status_code == 200


@pytest.mark.django_db
def test_soft_deleting_a_case_is_a_destructive_action(make_user, case):
    viewer = make_user("viewer")
    viewer_token = api_login(viewer)["access"]
    with exactly_one("case.delete", outcome="denied", actor=viewer, resource=f"case:{case.pk}"):
        refused = api(viewer_token).delete(f"/api/v1/tests/{case.pk}")
    assert refused.status_code == 403
    admin = make_user("admin")
    token = api_login(admin)["access"]
    with exactly_one("case.delete", actor=admin, resource=f"case:{case.pk}"):
        response = api(token).delete(f"/api/v1/tests/{case.pk}")
    assert response.status_code == 204


@pytest.mark.django_db
def test_recording_a_run(make_user, case):
    from releases.models import ReleaseCandidate

    reviewer = make_user("reviewer")
    ReleaseCandidate.objects.create(name="RC-AUDIT", sequence=1)
    token = api_login(reviewer)["access"]
    with exactly_one("run.record", actor=reviewer) as seen:
        response = post_json(api(token), f"/api/v1/tests/{case.pk}/runs", {"rc": "RC-AUDIT", "status": "fail"})
    assert response.status_code == 201, response.content
    assert seen.event.resource == f"run:{response.json()['id']}"
    assert (seen.event.metadata["status"], seen.event.metadata["case"]) == ("fail", str(case.pk))


@pytest.mark.django_db
def test_password_change(make_user):
    user = make_user("viewer", password=PASSWORD)
    client = browser(user)
    new_password = "yet-another-horse-42"
    with exactly_one("auth.password_change", actor=user, resource=f"user:{user.pk}"):
        response = client.post(
            "/accounts/password/change/",
            {"oldpassword": PASSWORD, "password1": new_password, "password2": new_password},
        )
    assert response.status_code == 302


# --- reports --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_report_generation_and_download(make_user, settings, tmp_path, monkeypatch, release_data):  # noqa: F811
    from reports import services as report_services
    from reports.tasks import report_generate_task

    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr(report_generate_task, "apply_async", lambda *args, **kwargs: None)  # generated below
    reviewer = make_user("reviewer")
    rc = release_data["run"].release_candidate
    with exactly_one("report.generate", actor=reviewer) as seen:
        response = browser(reviewer).post(
            "/api/v1/reports", json.dumps({"release_candidate": str(rc.pk)}), content_type="application/json"
        )
    assert response.status_code == 202, response.content
    report_id = response.json()["id"]
    assert seen.event.resource == f"report:{report_id}"
    report_services.report_generate(report_id=report_id)

    viewer = make_user("viewer")
    client = browser(viewer)
    link = client.get(f"/reports/{report_id}/download/pdf/")
    assert link.status_code == 302
    with exactly_one("report.download", actor=viewer, resource=f"report:{report_id}") as seen:
        download = client.get(link["Location"])
    assert download.status_code == 200
    assert seen.event.metadata["format"] == "pdf"
    other = browser(make_user("viewer"))
    with exactly_one("report.download", outcome="denied"):
        assert other.get(link["Location"]).status_code == 403  # a link is bound to its user

    admin = make_user("admin")
    with exactly_one("report.delete", actor=admin, resource=f"report:{report_id}"):
        assert browser(admin).delete(f"/api/v1/reports/{report_id}").status_code == 204


# --- AI gateway ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ai_quota_refusal_and_breaker_trip(make_user, settings, fake_openai, release_data):  # noqa: F811
    body = {"task": "triage_failure", "run": str(release_data["run"].pk)}
    # Events written by the gateway carry no request (no IP/agent/request id): see the final report.
    quotas = {role: dict(limits) for role, limits in settings.AI_QUOTAS.items()}
    original_viewer = dict(quotas["viewer"])
    quotas["viewer"]["daily_tokens"] = 10
    settings.AI_QUOTAS = quotas
    capped = make_user("viewer")
    with exactly_one("ai.quota_refused", outcome="denied", actor=capped, web=False):
        refused = post_json(browser(capped), "/api/v1/ai/assist", body)
    assert refused.status_code == 429
    assert fake_openai.request_count == 0  # refused before the provider

    settings.AI_QUOTAS = {**quotas, "viewer": original_viewer}
    settings.AI_MAX_RETRIES = 0
    settings.AI_BREAKER = {**settings.AI_BREAKER, "failure_threshold": 2, "cooldown_seconds": 60}
    fake_openai.script([{"status": 500}] * 2)
    client = browser(make_user("viewer"))
    post_json(client, "/api/v1/ai/assist", body)
    with exactly_one("ai.breaker_opened", outcome="failure", web=False) as seen:
        response = post_json(client, "/api/v1/ai/assist", body)
    assert response.status_code == 503, response.content
    assert seen.event.metadata["reason"] == "failures"


# --- secrets ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_secret_used_in_the_flows_reaches_the_trail_or_the_logs(make_user):
    """Passwords (right and wrong), tokens, reset keys and TOTP-like codes never appear in any stored field, nor in
    any JSON log line written meanwhile."""
    import logging

    from report_platform.logging import JsonFormatter

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        secrets = _run_flows_with_secrets(make_user)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    trail = json.dumps([event.__dict__ for event in AuditEvent.objects.all()], default=str)
    assert AuditEvent.objects.count() >= 5
    log_text = "\n".join(lines)
    assert '"event": "request"' in log_text
    for secret in secrets:
        assert secret not in trail
        assert secret not in log_text
    assert audit_chain_verify().ok


def _run_flows_with_secrets(make_user) -> list[str]:
    user = make_user("reviewer", password=PASSWORD)
    client = browser()
    client.post("/accounts/login/", {"login": user.email, "password": "wrong-password-secret-1"})
    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    tokens = api_login(user)
    post_json(api(), "/api/v1/auth/refresh", {"refresh": tokens["refresh"]})
    post_json(api(), "/api/v1/auth/refresh", {"refresh": tokens["refresh"]})  # reuse
    browser().post("/accounts/password/reset/", {"email": user.email})
    reset_key = re.search(r"/accounts/password/reset/key/(\S+)/", mail.outbox[-1].body).group(1)
    browser().get(f"/accounts/password/reset/key/{reset_key}/")  # the key is in the path: not in the access log
    signup = browser().post(
        "/accounts/signup/", {"email": "fresh@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert signup.status_code == 302
    confirm_key = re.search(r"/accounts/confirm-email/([^/\s]+)/", mail.outbox[-1].body).group(1)
    browser().get(f"/accounts/confirm-email/{confirm_key}/")
    post_json(api(), "/api/v1/auth/login", {"email": user.email, "password": PASSWORD, "code": "123456"})
    return [
        PASSWORD,
        "wrong-password-secret-1",
        tokens["access"],
        tokens["refresh"],
        reset_key.split("-", 1)[1],  # "<uid>-<token>": the token part is the secret
        confirm_key,
        user.password,
    ]

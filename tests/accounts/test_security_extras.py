"""Login metrics at /metrics, session "last seen", MFA changes (re-authentication, one audit event each), CSRF."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from allauth.usersessions.models import UserSession
from django.test import Client
from django.utils import timezone

from accounts.models import TokenFamily
from tests.accounts.helpers import events, totp_now

pytestmark = pytest.mark.django_db


def test_it_exports_login_attempts_by_outcome_at_metrics(client, make_user):
    user = make_user("viewer")
    client.post(
        "/api/v1/auth/login", {"email": user.email, "password": "nope-nope-nope"}, content_type="application/json"
    )
    client.post("/accounts/login/", {"login": user.email, "password": user.raw_password})
    body = client.get("/metrics").content.decode()
    for outcome in ("success", "failure", "locked"):
        assert f'rp_login_attempts_total{{outcome="{outcome}"}}' in body


def test_it_records_session_last_seen_at_most_every_five_minutes(make_user):
    user = make_user("viewer")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = Client(HTTP_USER_AGENT="Firefox/140", REMOTE_ADDR="192.0.2.10")
        client.post("/accounts/login/", {"login": user.email, "password": user.raw_password})
        client.get("/account/security/")
        first = UserSession.objects.get(user=user).last_seen_at
        traveller.shift(timedelta(minutes=2))
        client.get("/account/security/")
        assert UserSession.objects.get(user=user).last_seen_at == first
        traveller.shift(timedelta(minutes=4))
        client.get("/account/security/", REMOTE_ADDR="192.0.2.99")
        session = UserSession.objects.get(user=user)
        assert session.last_seen_at - first >= timedelta(minutes=6) and session.ip == "192.0.2.99"


def test_it_requires_reauthentication_to_remove_totp_and_audits_each_change_once(make_user):
    user = make_user("viewer")
    client = Client()
    client.post("/accounts/login/", {"login": user.email, "password": user.raw_password})
    response = client.get("/accounts/2fa/totp/activate/")
    assert response["Location"].startswith("/accounts/reauthenticate/")
    client.post(response["Location"], {"password": user.raw_password})
    page = client.get("/accounts/2fa/totp/activate/").content.decode()
    secret = re.search(r'id="authenticator_secret"[^>]*value="([A-Z2-7]+)"', page).group(1)
    assert client.post("/accounts/2fa/totp/activate/", {"code": totp_now(secret)}).status_code == 302
    added = [e for e in events("mfa.added") if e.metadata["type"] == "totp"]
    assert len(added) == 1 and secret not in str(added[0].metadata)

    with time_machine.travel(timezone.now() + timedelta(minutes=10), tick=False):
        response = client.post("/accounts/2fa/totp/deactivate/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
        assert user.authenticator_set.filter(type="totp").exists()
        assert not events("mfa.removed")


def test_it_keeps_totp_when_the_role_requires_mfa(settings, make_user):
    settings.MFA_REQUIRED_ROLES = ["reviewer", "admin"]
    user = make_user("reviewer")
    TOTP.activate(user, generate_totp_secret())
    client = Client()
    client.force_login(user)
    client.post("/accounts/reauthenticate/", {"password": user.raw_password})
    client.post("/accounts/2fa/totp/deactivate/")
    assert user.authenticator_set.filter(type="totp").exists()
    assert not events("mfa.removed")


def test_it_enforces_csrf_on_account_pages_and_session_api_calls(make_user):
    user = make_user("viewer")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    api = Client().post(
        "/api/v1/auth/login", {"email": user.email, "password": user.raw_password}, content_type="application/json"
    )
    family = TokenFamily.objects.get(user=user)
    assert browser.post(f"/account/security/tokens/{family.pk}/end/").status_code == 403
    assert TokenFamily.objects.get(pk=family.pk).revoked_at is None
    # A bearer token needs no CSRF token (it is not ambient like a cookie).
    bearer = Client(enforce_csrf_checks=True)
    assert bearer.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {api.json()['access']}").status_code == 200


def test_it_ends_api_logins_when_a_password_changes_outside_allauth(make_user):
    user = make_user("admin")
    Client().post(
        "/api/v1/auth/login", {"email": user.email, "password": user.raw_password}, content_type="application/json"
    )
    client = Client()
    client.force_login(user)
    new = "an-admin-page-passphrase-3"
    response = client.post(
        "/admin/password_change/", {"old_password": user.raw_password, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    assert TokenFamily.objects.get(user=user).revoked_reason == "password_changed"
    Client().post("/api/v1/auth/login", {"email": user.email, "password": new}, content_type="application/json")
    user.refresh_from_db()
    user.display_name = "Renamed"
    user.save()  # other saves leave token families alone
    assert TokenFamily.objects.filter(user=user, revoked_at=None).count() == 1

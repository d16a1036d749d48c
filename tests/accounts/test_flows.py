"""Browser flows through allauth with the Django test client: sign-up with verification, TOTP login, reset."""

from __future__ import annotations

import re

import pytest
from allauth.mfa.models import Authenticator
from django.core import mail, signing
from django.db import connection

from accounts.models import User
from tests.accounts.helpers import events, last_link, totp_now

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-42"


def _signup(client, email="new.person@example.com"):
    return client.post(
        "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}, follow=False
    )


def _login(client, email, password=PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


def _enrol_totp(client, password=PASSWORD) -> str:
    page = client.get("/accounts/2fa/totp/activate/")
    # Changing MFA needs a fresh re-authentication.
    assert page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/")
    assert client.post(page["Location"], {"password": password}).status_code == 302
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200, page.status_code
    secret = re.search(r'id="authenticator_secret"[^>]*value="([A-Z2-7]+)"', page.content.decode()) or re.search(
        r'value="([A-Z2-7]{32})"', page.content.decode()
    )
    secret = secret.group(1)
    # While enrolment is pending allauth keeps the secret in the session: the stored document shows no secret.
    raw = [
        signing.loads(d["session_data"], salt="django.contrib.sessions.SessionStore", serializer=signing.JSONSerializer)
        for d in connection.database["django_session"].find()
    ]
    pending = [r["mfa.totp.secret"] for r in raw if "mfa.totp.secret" in r]
    assert pending and all(value.startswith("fernet:") and secret not in value for value in pending)
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_now(secret)})
    assert response.status_code == 302, response.content.decode()[:2000]
    return secret


def test_it_signs_up_verifies_by_post_and_only_then_logs_in(client):
    response = _signup(client)
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    user = User.objects.get(email="new.person@example.com")
    assert user.role == "viewer" and not user.verified

    # Unverified: logging in sends to the verification notice, no session.
    _login(client, "new.person@example.com")
    assert "_auth_user_id" not in client.session

    link = last_link("/accounts/confirm-email/")
    get = client.get(link)
    assert get.status_code == 200
    assert not User.objects.get(pk=user.pk).verified  # a GET never confirms
    post = client.post(link)
    assert post.status_code == 302
    assert User.objects.get(pk=user.pk).verified
    assert len(events("auth.email_verified")) == 1

    response = _login(client, "new.person@example.com")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    assert len(events("auth.login", outcome="success")) == 1


def test_it_enrols_totp_and_then_requires_the_code_at_login(client, make_user):
    user = make_user("reviewer", password=PASSWORD)
    _login(client, user.email)
    secret = _enrol_totp(client)
    assert Authenticator.objects.filter(user=user, type="totp").exists()
    assert len(events("mfa.added")) >= 1
    client.post("/accounts/logout/")
    assert "_auth_user_id" not in client.session
    assert len(events("auth.logout")) == 1

    response = _login(client, user.email)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/2fa/authenticate/")
    assert "_auth_user_id" not in client.session
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)})
    assert response.status_code == 302, response.content.decode()[:1500]
    assert client.session["_auth_user_id"] == str(user.pk)


def test_it_resets_a_password_without_logging_in(client, make_user):
    user = make_user("viewer", password=PASSWORD)
    response = client.post("/accounts/password/reset/", {"email": user.email.upper()})
    assert response.status_code == 302
    link = last_link("/accounts/password/reset/key/")
    response = client.get(link, follow=True)
    assert response.status_code == 200
    form_url = response.redirect_chain[-1][0] if response.redirect_chain else link
    new_password = "another-long-passphrase-7"
    response = client.post(form_url, {"password1": new_password, "password2": new_password})
    assert response.status_code == 302, response.content.decode()[:1500]
    assert "_auth_user_id" not in client.session
    assert User.objects.get(pk=user.pk).check_password(new_password)
    assert len(events("auth.password_reset")) == 1
    assert len(mail.outbox) >= 1

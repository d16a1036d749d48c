"""A. Authentication: lockout per account (A1) and per IP (A2), no enumeration (A3), passwords (A4), reset (A5),
mandatory verification (A6), TOTP and recovery codes, mandatory MFA, admin login through the same flow (A7)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.hashers import BCryptSHA256PasswordHasher, get_hasher
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from accounts.hashers import BCryptSHA256Cost12PasswordHasher
from accounts.models import TokenFamily, User
from audit.models import AuditEvent
from tests.accounts.helpers import events, last_link, totp_now

pytestmark = pytest.mark.django_db

WRONG = "wrong-password-000"


def _api_login(client, email, password, **extra):
    return client.post(
        "/api/v1/auth/login", {"email": email, "password": password, **extra}, content_type="application/json"
    )


def _metric(outcome: str) -> float:
    return REGISTRY.get_sample_value("rp_login_attempts_total", {"outcome": outcome}) or 0.0


# --- A1 ---------------------------------------------------------------------------------------------------------


def test_it_locks_an_account_after_five_failures_across_case_variants_until_the_window_passes(client, make_user):
    user = make_user("viewer", email="lock.me@example.com")
    failed_before, locked_before = _metric("failure"), _metric("locked")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for variant in (
            "lock.me@example.com",
            "LOCK.ME@example.com",
            "Lock.Me@Example.com",
            "lock.me@EXAMPLE.COM",
            "LOCK.me@example.com",
        ):
            response = _api_login(client, variant, WRONG)
            assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_credentials"
        # The 6th attempt is refused even with the right password, in the API and in the browser form.
        response = _api_login(client, user.email, user.raw_password)
        assert response.status_code == 429 and response.json()["error"]["code"] == "too_many_login_attempts"
        page = client.post("/accounts/login/", {"login": user.email, "password": user.raw_password})
        assert page.status_code == 200 and "_auth_user_id" not in client.session
        assert "Too many failed login attempts" in page.content.decode()
        assert not TokenFamily.objects.exists()

        traveller.shift(timedelta(minutes=5, seconds=1))
        assert _api_login(client, user.email, user.raw_password).status_code == 200

    assert len(events("auth.login", outcome="failure")) == 5
    lockouts = events("auth.lockout")
    assert len(lockouts) == 2 and {e.actor_email for e in lockouts} == {"lock.me@example.com"}
    assert len(events("auth.login", outcome="success")) == 1
    assert _metric("failure") - failed_before == 5 and _metric("locked") - locked_before == 2
    for event in AuditEvent.objects.all():
        assert user.raw_password not in str(event.metadata) and WRONG not in str(event.metadata)


def test_it_clears_the_account_lockout_after_a_password_reset(client, make_user):
    user = make_user("viewer")
    for _ in range(5):
        _api_login(client, user.email, WRONG)
    assert _api_login(client, user.email, user.raw_password).status_code == 429
    client.post("/api/v1/auth/reset", {"email": user.email}, content_type="application/json")
    uid, key = re.search(r"/password/reset/key/([0-9a-f]{24})-([^/\s]+)/", mail.outbox[-1].body).groups()
    new = "a-fresh-passphrase-2026"
    response = client.post(
        "/api/v1/auth/reset/confirm", {"uid": uid, "key": key, "password": new}, content_type="application/json"
    )
    assert response.status_code == 204
    assert _api_login(client, user.email, new).status_code == 200


def test_it_keeps_the_lockout_counters_in_the_shared_redis_cache(client, make_user, settings):
    """Every web process sees the same counters: they live in Redis, not in process memory."""
    import redis

    user = make_user("viewer")
    for _ in range(5):
        _api_login(client, user.email, WRONG)
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    raw = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    keys = [key.decode() for key in raw.scan_iter("*allauth:rl:allauth.account:login_failed*")]
    assert len(keys) == 2  # one per IP, one per account
    # Another process (another web worker) refuses the right password too.
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client(REMOTE_ADDR='198.51.100.50').post('/api/v1/auth/login', "
        f"json.dumps({{'email': {user.email!r}, 'password': {user.raw_password!r}}}), "
        "content_type='application/json'); print('STATUS', r.status_code)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
        "MONGODB_NAME": connection.settings_dict["NAME"],
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert "STATUS 429" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


# --- A2 ---------------------------------------------------------------------------------------------------------


def test_it_limits_failures_per_ip_and_ignores_a_spoofed_forwarded_for(make_user):
    make_user("viewer", email="someone@example.com")
    client = Client(REMOTE_ADDR="203.0.113.5")
    for attempt in range(10):
        response = _api_login(client, f"user{attempt}@example.com", WRONG, HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}")
        assert response.status_code == 401, attempt
    response = client.post(
        "/api/v1/auth/login",
        {"email": "someone@example.com", "password": WRONG},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="192.0.2.77",
    )
    assert response.status_code == 429
    # Another client address is not affected.
    assert _api_login(Client(REMOTE_ADDR="203.0.113.6"), "someone@example.com", WRONG).status_code == 401
    assert len(events("auth.lockout")) == 1


# --- A3 ---------------------------------------------------------------------------------------------------------


def _normalise(html: str, email: str) -> str:
    html = html.replace(email, "EMAIL")
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'"X-CSRFToken": "[^"]+"', "", html)
    return re.sub(r'nonce="[^"]+"', "", html)


def test_it_answers_unknown_and_known_emails_the_same_for_login_reset_and_signup(client, make_user):
    known = make_user("viewer", email="known@example.com")
    unknown = "nobody@example.com"
    # API login
    a, b = _api_login(client, unknown, WRONG), _api_login(client, known.email, WRONG)
    assert (a.status_code, a.content) == (b.status_code, b.content)
    # Browser login
    a = client.post("/accounts/login/", {"login": unknown, "password": WRONG})
    b = client.post("/accounts/login/", {"login": known.email, "password": WRONG})
    assert a.status_code == b.status_code == 200
    assert _normalise(a.content.decode(), unknown) == _normalise(b.content.decode(), known.email)
    # Reset (API and browser)
    a = client.post("/api/v1/auth/reset", {"email": unknown}, content_type="application/json")
    b = client.post("/api/v1/auth/reset", {"email": known.email}, content_type="application/json")
    assert (a.status_code, a.content) == (b.status_code, b.content) == (202, a.content)
    cache_clear()
    a = client.post("/accounts/password/reset/", {"email": unknown})
    b = client.post("/accounts/password/reset/", {"email": known.email})
    assert (a.status_code, a["Location"]) == (b.status_code, b["Location"])
    # Signup (API and browser): the known address gets an "account exists" mail, no second account.
    a = client.post(
        "/api/v1/auth/register",
        {"email": "fresh@example.com", "password": "a-long-passphrase-42"},
        content_type="application/json",
    )
    b = client.post(
        "/api/v1/auth/register",
        {"email": known.email, "password": "a-long-passphrase-42"},
        content_type="application/json",
    )
    assert (a.status_code, a.content) == (b.status_code, b.content)
    a = client.post(
        "/accounts/signup/",
        {"email": "fresh2@example.com", "password1": "a-long-passphrase-42", "password2": "a-long-passphrase-42"},
    )
    b = client.post(
        "/accounts/signup/",
        {"email": known.email, "password1": "a-long-passphrase-42", "password2": "a-long-passphrase-42"},
    )
    assert (a.status_code, a["Location"]) == (b.status_code, b["Location"])
    assert User.objects.filter(email=known.email).count() == 1


def cache_clear():
    from django.core.cache import cache

    cache.clear()


# --- A4 ---------------------------------------------------------------------------------------------------------


def test_it_hashes_with_bcrypt_sha256_cost_12_without_truncation(settings):
    settings.PASSWORD_HASHERS = ["accounts.hashers.BCryptSHA256Cost12PasswordHasher"]
    hasher = get_hasher("default")
    assert isinstance(hasher, BCryptSHA256Cost12PasswordHasher) and isinstance(hasher, BCryptSHA256PasswordHasher)
    encoded = hasher.encode("x" * 72 + "A", hasher.salt())
    assert encoded.startswith("bcrypt_sha256$$2b$12$")
    assert hasher.decode(encoded)["work_factor"] >= 12
    assert hasher.verify("x" * 72 + "A", encoded)
    assert not hasher.verify("x" * 72 + "B", encoded)  # plain bcrypt would ignore byte 73


def test_it_rejects_short_and_common_passwords(client):
    for password, fragment in (("short-pw-11", "at least 12"), ("password1234", "too common")):
        response = client.post(
            "/api/v1/auth/register", {"email": "p@example.com", "password": password}, content_type="application/json"
        )
        assert response.status_code == 400, password
        assert fragment in str(response.json()["error"]["fields"]["password"]), response.json()
    assert not User.objects.exists()


# --- A5 ---------------------------------------------------------------------------------------------------------


def _reset_key(client, email):
    assert client.post("/api/v1/auth/reset", {"email": email}, content_type="application/json").status_code == 202
    return re.search(r"/password/reset/key/([0-9a-f]{24})-([^/\s]+)/", mail.outbox[-1].body).groups()


def _confirm(client, uid, key, password):
    return client.post(
        "/api/v1/auth/reset/confirm", {"uid": uid, "key": key, "password": password}, content_type="application/json"
    )


def test_it_uses_a_reset_key_once_and_ends_sessions_and_token_families(make_user):
    user = make_user("viewer")
    api = Client()
    pair = _api_login(api, user.email, user.raw_password).json()
    browser = Client()
    browser.force_login(user)
    uid, key = _reset_key(api, user.email)
    response = _confirm(api, uid, key, "the-new-passphrase-1")
    assert response.status_code == 204 and response.content == b""  # no token: no auto-login
    assert "_auth_user_id" not in api.session
    again = _confirm(api, uid, key, "the-newer-passphrase-2")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_reset_key"
    assert User.objects.get(pk=user.pk).check_password("the-new-passphrase-1")
    assert TokenFamily.objects.get(user=user).revoked_reason == "password_changed"
    assert api.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {pair['access']}").status_code == 401
    assert browser.get("/account/security/").status_code == 302  # the other browser session ended
    assert len(events("auth.password_reset")) == 1
    assert len(events("auth.password_reset_request")) == 1


def test_it_expires_reset_keys_after_an_hour(make_user):
    user = make_user("viewer")
    client = Client()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        uid, key = _reset_key(client, user.email)
        traveller.shift(timedelta(hours=1, seconds=1))
        assert _confirm(client, uid, key, "the-new-passphrase-1").status_code == 400
        traveller.shift(-timedelta(seconds=2))
        assert _confirm(client, uid, key, "the-new-passphrase-1").status_code == 204


def test_it_sends_at_most_one_reset_mail_per_address_per_cooldown(client, make_user):
    user = make_user("viewer")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        assert (
            client.post("/api/v1/auth/reset", {"email": user.email}, content_type="application/json").status_code == 202
        )
        second = client.post("/api/v1/auth/reset", {"email": user.email.upper()}, content_type="application/json")
        assert second.status_code == 429
        assert client.post("/accounts/password/reset/", {"email": user.email}).status_code == 429
        assert len(mail.outbox) == 1
        traveller.shift(timedelta(minutes=5, seconds=1))
        assert (
            client.post("/api/v1/auth/reset", {"email": user.email}, content_type="application/json").status_code == 202
        )
        assert len(mail.outbox) == 2


def test_it_still_requires_mfa_after_a_reset(make_user):
    user = make_user("reviewer")
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    client = Client()
    uid, key = _reset_key(client, user.email)
    assert _confirm(client, uid, key, "the-new-passphrase-1").status_code == 204
    response = _api_login(client, user.email, "the-new-passphrase-1")
    assert response.status_code == 401 and response.json()["error"]["code"] == "mfa_required"
    browser = client.post("/accounts/login/", {"login": user.email, "password": "the-new-passphrase-1"})
    assert browser["Location"].startswith("/accounts/2fa/authenticate/")
    assert "_auth_user_id" not in client.session


# --- A6 ---------------------------------------------------------------------------------------------------------


def test_it_gives_an_unverified_user_no_session_and_no_token(client):
    password = "a-long-passphrase-42"
    response = client.post(
        "/api/v1/auth/register",
        {"email": "new@example.com", "password": password, "role": "admin"},
        content_type="application/json",
    )
    assert response.status_code == 202
    user = User.objects.get(email="new@example.com")
    assert user.role == "viewer" and not user.verified  # mass-assigned role ignored
    response = _api_login(client, "new@example.com", password)
    assert response.status_code == 403 and response.json()["error"]["code"] == "email_not_verified"
    assert "access" not in response.json() and not TokenFamily.objects.exists()
    client.post("/accounts/login/", {"login": "new@example.com", "password": password})
    assert "_auth_user_id" not in client.session
    link = last_link("/accounts/confirm-email/")
    assert client.get(link).status_code == 200 and not User.objects.get(pk=user.pk).verified
    assert client.post(link).status_code == 302
    assert User.objects.get(pk=user.pk).verified
    assert _api_login(client, "new@example.com", password).status_code == 200
    assert len(events("auth.email_verified")) == 1


# --- A7 ---------------------------------------------------------------------------------------------------------


def test_it_accepts_a_totp_code_once_and_recovery_codes_once(make_user):
    user = make_user("reviewer")
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    codes = RecoveryCodes.activate(user).get_unused_codes()
    client = Client()
    with time_machine.travel(timezone.now().replace(second=1), tick=False):
        code = totp_now(secret)
        assert (
            _api_login(
                client, user.email, user.raw_password, code="000000" if code != "000000" else "111111"
            ).status_code
            == 401
        )
        assert _api_login(client, user.email, user.raw_password, code=code).status_code == 200
        replay = _api_login(client, user.email, user.raw_password, code=code)
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "invalid_mfa_code"
    assert _api_login(client, user.email, user.raw_password, code=codes[0]).status_code == 200
    assert _api_login(client, user.email, user.raw_password, code=codes[0]).status_code == 401
    assert _api_login(client, user.email, user.raw_password, code=codes[1]).status_code == 200
    assert (
        len(RecoveryCodes(Authenticator.objects.get(user=user, type="recovery_codes")).get_unused_codes())
        == len(codes) - 2
    )


def test_it_stores_totp_secrets_and_recovery_seeds_encrypted(make_user):
    user = make_user("reviewer")
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    raw = list(connection.database["mfa_authenticator"].find({"user_id": user.pk}))
    assert len(raw) == 2
    assert secret not in str(raw)
    for document in raw:
        stored = document["data"].get("secret") or document["data"].get("seed")
        assert stored.startswith("fernet:")
    assert TOTP(Authenticator.objects.get(user=user, type="totp")).validate_code(totp_now(secret))


def test_it_makes_mfa_mandatory_for_reviewers_and_admins_on_every_page(settings, make_user):
    settings.MFA_REQUIRED_ROLES = ["reviewer", "admin"]
    viewer, reviewer, admin = make_user("viewer"), make_user("reviewer"), make_user("admin")
    for user in (reviewer, admin):
        client = Client()
        client.force_login(user)
        for path in ("/", "/account/security/", "/admin/"):
            response = client.get(path)
            assert response.status_code == 302 and response["Location"] == "/accounts/2fa/totp/activate/", path
        assert client.get("/api/v1/auth/me").status_code == 403
        assert client.get("/api/v1/auth/me", HTTP_AUTHORIZATION="Bearer junk").status_code == 403
        assert _api_login(Client(), user.email, user.raw_password).json()["error"]["code"] == "mfa_enrolment_required"
    client = Client()
    client.force_login(viewer)
    assert client.get("/account/security/").status_code == 200
    TOTP.activate(reviewer, generate_totp_secret())
    client.force_login(reviewer)
    assert client.get("/account/security/").status_code == 200


def test_it_sends_the_admin_login_through_allauth_with_mfa(client, make_user):
    admin = make_user("admin")
    secret = generate_totp_secret()
    TOTP.activate(admin, secret)
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    response = client.post("/accounts/login/?next=/admin/", {"login": admin.email, "password": admin.raw_password})
    assert response["Location"].startswith("/accounts/2fa/authenticate/")
    assert client.get("/admin/").status_code == 302
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_now(secret)})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200

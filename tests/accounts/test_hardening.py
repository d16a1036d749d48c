"""Findings of the outside attack (issue "Hardening from an outside attack"), one section each: published signing
secret, guessable token-family ids and unthrottled token guessing, 500s for bad bodies, the register timing leak,
weak passwords. (The refresh race is in test_tokens.py.)"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import statistics
import subprocess
import sys
import time
from datetime import timedelta

import jwt
import pytest
import time_machine
from bson import ObjectId
from django.conf import settings
from django.core import signing
from django.test import Client
from django.utils import timezone

from accounts import tokens
from accounts.models import TokenFamily, User
from audit.models import AuditEvent
from report_platform import devstack
from reports.services import SIGNING_SALT
from tests.accounts.helpers import events

pytestmark = pytest.mark.django_db

# The secrets the repository used to ship as the dev and test defaults: public, so they must sign nothing.
PUBLISHED_SECRETS = (
    "dev-only-insecure-secret-key-change-me-0123456789abcdef",
    "test-only-secret-key-not-for-production-0123456789abcdef",
)
ME = "/api/v1/auth/me"


@pytest.fixture
def api():
    return Client(HTTP_USER_AGENT="pytest-cli/1.0", REMOTE_ADDR="10.9.8.7")


def _login(client, user) -> dict:
    response = client.post(
        "/api/v1/auth/login", {"email": user.email, "password": user.raw_password}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


# --- 1. no published secret signs anything -----------------------------------------------------------------------


def test_it_runs_with_a_secret_key_that_is_not_published():
    assert settings.SECRET_KEY not in PUBLISHED_SECRETS and len(settings.SECRET_KEY) >= 50
    for name in ("base", "dev", "test", "production"):
        source = (settings.BASE_DIR / "report_platform" / "settings" / f"{name}.py").read_text()
        assert settings.SECRET_KEY not in source


def test_it_generates_the_dev_key_once_into_var_with_mode_0600(tmp_path):
    first = devstack.local_secret_key(tmp_path)
    assert len(first) >= 50 and first not in PUBLISHED_SECRETS
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert devstack.local_secret_key(tmp_path) == first  # stable across restarts
    assert devstack.local_secret_key(tmp_path / "other") != first  # random per checkout


def test_it_gives_dev_settings_the_generated_key_unless_one_is_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env.update(DJANGO_SETTINGS_MODULE="report_platform.settings.dev", REPORT_PLATFORM_VAR_DIR=str(tmp_path))
    script = "from django.conf import settings; print(settings.SECRET_KEY)"

    def key(extra: dict) -> str:
        result = subprocess.run(
            [sys.executable, "-c", script], env={**env, **extra}, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    generated = key({})
    assert generated not in PUBLISHED_SECRETS and generated == (tmp_path / "secret_key").read_text().strip()
    given = secrets.token_urlsafe(50)
    assert key({"DJANGO_SECRET_KEY": given}) == given


def test_it_refuses_to_start_production_with_a_published_key():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.production",
        "DJANGO_SECRET_KEY": PUBLISHED_SECRETS[0],
    }
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.DEBUG"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "published" in result.stderr


def test_it_rejects_an_access_token_signed_with_a_published_secret(api, make_user):
    user = make_user("viewer")
    pair = _login(api, user)
    claims = jwt.decode(pair["access"], options={"verify_signature": False})
    claims["exp"] = int((timezone.now() + timedelta(days=3650)).timestamp())
    for published in PUBLISHED_SECRETS:
        key = hmac.new(published.encode(), b"report-platform jwt signing key", hashlib.sha256).digest()
        forged = jwt.encode(claims, key, algorithm="HS256", headers={"kid": "derived"})
        response = api.get(ME, **_bearer(forged))
        assert response.status_code == 401, published
    assert api.get(ME, **_bearer(pair["access"])).status_code == 200


def test_it_rejects_a_report_link_signed_with_a_published_secret(client, make_user):
    user = make_user("viewer")
    client.force_login(user)
    payload = {"r": str(ObjectId()), "u": str(user.pk), "f": "pdf"}
    for published in PUBLISHED_SECRETS:
        with time_machine.travel(timezone.now() + timedelta(days=3650)):
            token = signing.dumps(payload, key=published, salt=SIGNING_SALT, compress=False)
        response = client.get(f"/reports/file/{token}/", HTTP_ACCEPT="application/json")
        assert response.status_code == 403, published
        assert response.json()["error"]["code"] == "report_link_invalid"
    assert {e.metadata["reason"] for e in events("report.download")} == {"report_link_invalid"}


# --- 2. random family ids, failed token checks throttled per IP ---------------------------------------------------


def test_it_names_the_family_in_tokens_by_a_random_id_not_the_database_id(api, make_user):
    user = make_user("viewer")
    pair = _login(api, user)
    family = TokenFamily.objects.get(user=user)
    for token in (pair["access"], pair["refresh"]):
        fam = jwt.decode(token, options={"verify_signature": False})["fam"]
        assert fam == family.public_id != str(family.pk)
        assert len(fam) >= 22  # token_urlsafe(16): 128 random bits
    # Even with the signing key, a token naming the family by its database id is refused.
    claims = jwt.decode(pair["access"], options={"verify_signature": False})
    key = tokens.signing_keys()[0]
    by_pk = jwt.encode(dict(claims, fam=str(family.pk)), key.secret, algorithm="HS256", headers={"kid": key.kid})
    assert api.get(ME, **_bearer(by_pk)).status_code == 401


def test_it_gives_existing_families_a_random_id_in_the_migration(api, make_user):
    from importlib import import_module

    from django.apps import apps
    from django.db import connection

    migration = import_module("accounts.migrations.0004_token_family_public_id")
    user = make_user("viewer")
    pair = _login(api, user)
    _login(api, user)
    connection.database["tokenFamilies"].update_many({}, {"$set": {"public_id": None}})
    migration.give_existing_families_a_public_id(apps, None)
    ids = list(TokenFamily.objects.values_list("public_id", flat=True))
    assert len(set(ids)) == 2 and all(ids) and all(len(i) >= 22 for i in ids)
    # A refresh token issued before the migration still works (found by its hash) and gets the new id.
    response = api.post("/api/v1/auth/refresh", {"refresh": pair["refresh"]}, content_type="application/json")
    assert response.status_code == 200
    assert api.get(ME, **_bearer(response.json()["access"])).status_code == 200


def test_it_refuses_an_ip_after_too_many_failed_token_checks_until_the_window_ends(api, make_user, settings):
    settings.API_TOKEN_FAILURES_PER_IP = 20
    settings.API_RATE_LIMITS_ENABLED = False  # the gateway's general per-IP limits are not what is tested here
    user = make_user("viewer")
    pair = _login(api, user)
    elsewhere = Client(REMOTE_ADDR="10.200.0.1")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        statuses = [api.get(ME, **_bearer(f"{pair['access']}x{n}")).status_code for n in range(149)]
        assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
        refused = api.get(ME, **_bearer(pair["access"]))  # the right token too, from this address
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_token_failures"
        # Another address is not affected; a session-authenticated browser call is not a bearer check.
        assert elsewhere.get(ME, **_bearer(pair["access"])).status_code == 200
        traveller.shift(timedelta(seconds=settings.API_TOKEN_FAILURE_WINDOW_SECONDS))
        assert api.get(ME, **_bearer(pair["access"])).status_code == 200


def test_it_counts_token_failures_per_client_ip_behind_the_trusted_proxy(make_user, settings):
    settings.API_TOKEN_FAILURES_PER_IP = 3
    settings.TRUSTED_PROXY_IPS = ["10.0.0.1"]
    attacker = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    neighbour = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.6")
    for _ in range(3):
        assert attacker.get(ME, **_bearer("nope")).status_code == 401
    assert attacker.get(ME, **_bearer("nope")).status_code == 429
    # A spoofed X-Forwarded-For prefix does not reset the count: the proxy's last hop is the client.
    spoofed = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.5")
    assert spoofed.get(ME, **_bearer("nope")).status_code == 429
    assert neighbour.get(ME, **_bearer("nope")).status_code == 401


# --- 3. oversized and malformed bodies ---------------------------------------------------------------------------


def _too_big() -> bytes:
    return b'{"email": "a@example.com", "password": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + b'"}'


def test_it_answers_413_for_an_oversized_json_body_anonymous_or_not(api, make_user):
    user = make_user("reviewer")
    access = _login(api, user)["access"]
    users_before, audit_before = User.objects.count(), AuditEvent.objects.count()
    for path, extra in (
        ("/api/v1/auth/login", {}),
        ("/api/v1/auth/register", {}),
        ("/api/v1/auth/refresh", {}),
        ("/api/v1/tests", _bearer(access)),
    ):
        response = api.post(path, _too_big(), content_type="application/json", **extra)
        assert response.status_code == 413, (path, response.content[:200])
        assert response.json()["error"]["code"] == "payload_too_large"
        assert set(response.json()["error"]) >= {"code", "message", "fields"}
    assert User.objects.count() == users_before and AuditEvent.objects.count() == audit_before


def test_it_answers_400_for_a_multipart_body_without_a_boundary(api, make_user):
    user = make_user("reviewer")
    access = _login(api, user)["access"]
    for path in ("/api/v1/imports/csv", "/api/v1/auth/login"):
        response = api.post(path, b"--x\r\n", content_type="multipart/form-data", **_bearer(access))
        assert response.status_code in (400, 415), (path, response.content[:200])
        assert response.json()["error"]["code"] in ("malformed_body", "unsupported_media_type")
    response = api.post("/api/v1/imports/csv", b"--x\r\n", content_type="multipart/form-data", **_bearer(access))
    assert response.json()["error"]["code"] == "malformed_body"
    # The browser session path reads the body for its CSRF check: the same answer, never a 500.
    browser = Client()
    browser.force_login(user)
    response = browser.post("/api/v1/imports/csv", b"--x\r\n", content_type="multipart/form-data")
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_body"


def test_it_answers_pages_with_400_not_500_for_bad_bodies(client):
    big = b"login=" + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    assert client.post("/accounts/login/", big, content_type="application/x-www-form-urlencoded").status_code == 400
    assert client.post("/accounts/login/", b"--x", content_type="multipart/form-data").status_code == 400


def test_it_refuses_a_non_json_body_on_a_json_endpoint_with_415(api, make_user):
    user = make_user("reviewer")
    access = _login(api, user)["access"]
    body = '{"suite": "0123456789abcdef01234567", "key": "K-1", "title": "t", "category": "c", "owner": "o"}'
    response = api.post("/api/v1/tests", body, content_type="text/plain", **_bearer(access))
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    login = api.post(
        "/api/v1/auth/login",
        f'{{"email": "{user.email}", "password": "{user.raw_password}"}}',
        content_type="text/plain",
    )
    assert login.status_code == 415
    assert TokenFamily.objects.filter(user=user).count() == 1


# --- 5. register answers in the same time for known and new addresses ----------------------------------------------


@pytest.mark.parametrize("channel", ["api", "browser"])
def test_it_registers_known_and_new_addresses_in_about_the_same_time(client, make_user, settings, channel):
    settings.PASSWORD_HASHERS = ["accounts.hashers.BCryptSHA256Cost12PasswordHasher"]
    known = [make_user("viewer", email=f"known{n}@example.com") for n in range(3)]
    password = "a-long-passphrase-42"

    def timed(email: str) -> float:
        started = time.perf_counter()
        if channel == "api":
            response = client.post(
                "/api/v1/auth/register", {"email": email, "password": password}, content_type="application/json"
            )
            assert response.status_code == 202, response.content
        else:
            response = client.post("/accounts/signup/", {"email": email, "password1": password, "password2": password})
            assert response.status_code == 302, response.content
        return time.perf_counter() - started

    known_times, new_times = [], []
    for n in range(3):
        known_times.append(timed(known[n].email))
        new_times.append(timed(f"new{n}@example.com"))
    ratio = statistics.median(known_times) / statistics.median(new_times)
    assert 0.5 <= ratio <= 2, (known_times, new_times)


# --- 6. weak passwords -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [" " * 12, "aaaaaaaaaaaa", "reportplatform", "Report-Platform-1", "abababababab", "margaret.hamilton1"],
)
def test_it_refuses_weak_passwords(client, password):
    response = client.post(
        "/api/v1/auth/register",
        {"email": "margaret.hamilton@example.com", "password": password},
        content_type="application/json",
    )
    assert response.status_code == 400, (password, response.content)
    assert response.json()["error"]["fields"]["password"]
    assert not User.objects.exists()


def test_it_refuses_a_weak_new_password_on_reset_and_keeps_strong_ones(make_user):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    user = make_user("viewer")
    with pytest.raises(ValidationError):
        validate_password(" " * 16, user)
    for strong in ("correct-horse-battery-9", "a-long-passphrase-42", "another-correct-horse-7"):
        validate_password(strong, user)

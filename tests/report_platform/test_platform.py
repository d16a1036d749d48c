"""Health, metrics gate, the Celery round trip, seed_demo, production settings."""

import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from releases.models import ReleaseCandidate, TestCase, TestRun, TestSuite


@pytest.mark.django_db
def test_healthz_reports_mongodb_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["mongodb"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert client.get("/api/v1/health").json()["status"] == "ok"


@pytest.mark.django_db
def test_healthz_says_degraded_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "error"


@pytest.mark.django_db
def test_metrics_are_served_to_allowed_ips_and_token_holders_only(client, settings):
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    settings.METRICS_ALLOWED_IPS = []
    refused = client.get("/metrics")
    assert refused.status_code == 403
    settings.METRICS_TOKEN = "scrape-token-123"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert allowed.status_code == 200
    assert b"django_http_requests_total" in allowed.content


@pytest.mark.worker
def test_celery_round_trip_with_a_real_worker_and_redis(celery_worker_process):
    from report_platform.tasks import health_ping

    token = uuid.uuid4().hex
    result = health_ping.delay(token)
    assert result.get(timeout=30) == {"token": token, "database": "ok"}


@pytest.mark.django_db
def test_seed_demo_fills_a_realistic_data_set_once(capsys):
    call_command("seed_demo", "--cases-per-suite", "20")
    out = capsys.readouterr().out
    assert {u.role for u in User.objects.all()} == {"viewer", "reviewer", "admin"}
    assert out.count("password: ") == 3
    assert TestSuite.objects.count() >= 4
    assert TestCase.objects.count() == 20 * TestSuite.objects.count()
    assert ReleaseCandidate.objects.count() >= 4
    assert TestRun.objects.count() > TestCase.objects.count() * 3
    assert set(TestRun.objects.values_list("status", flat=True)) == {"pass", "fail", "pending"}
    call_command("seed_demo", "--if-empty")
    assert "already present" in capsys.readouterr().out
    assert User.objects.count() == 3


@pytest.mark.django_db
def test_seed_demo_refuses_production_settings(settings):
    settings.SEED_DEMO_ALLOWED = False
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_check_deploy_with_production_settings_reports_nothing():
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env |= {
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.production",
        "DJANGO_SECRET_KEY": "k3Y-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "DJANGO_ALLOWED_HOSTS": "reports.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_refuse_a_missing_secret_key():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "report_platform.settings.production", "DJANGO_SECRET_KEY": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_the_password_hasher_is_bcrypt_sha256_at_cost_12():
    from django.contrib.auth.hashers import get_hasher

    from report_platform.settings import base

    assert base.PASSWORD_HASHERS[0] == "accounts.hashers.BCryptSHA256Cost12PasswordHasher"
    hasher = get_hasher("bcrypt_sha256")
    assert hasher.rounds >= 12
    encoded = hasher.encode("a" * 100 + "tail-1", hasher.salt())
    assert encoded.startswith("bcrypt_sha256$$2b$12$")
    # No truncation surprise at 72 bytes: the tail matters.
    assert not hasher.verify("a" * 100 + "tail-2", encoded)


def test_make_run_set_up_works_with_dev_settings_where_debug_logs_every_query(tmp_path):
    """`make run` migrates and seeds with dev settings (DEBUG on: the backend wraps the database in a query-logging
    proxy). Runs in a fresh database of the test server, dropped afterwards."""
    import pymongo

    name = f"devcheck_{uuid.uuid4().hex[:8]}"
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env |= {
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.dev",
        "MONGODB_NAME": name,
        "REPORT_PLATFORM_VAR_DIR": str(tmp_path),
    }
    try:
        for command in (["migrate", "--no-input", "-v", "0"], ["seed_demo", "--cases-per-suite", "2"]):
            result = subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=settings.BASE_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        assert "reviewer@demo.local" in result.stdout
    finally:
        pymongo.MongoClient(os.environ["MONGODB_URI"]).drop_database(name)

"""The API gateway's rate limits (report_platform/rate_limits.py), on the real test Redis: per user by role, per IP
when anonymous, the heavy bucket, shared by every process, the window moved with time-machine, the headers on every
answer, the refusal metric, and fail-open when Redis is down."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import close_old_connections
from django.test import Client, RequestFactory, override_settings
from django.urls import resolve

from report_platform import observability, rate_limits

ROOT = Path(__file__).resolve().parents[2]
ME = "/api/v1/auth/me"
# Frozen clocks start 5 s into a minute, so a per-minute window never ends in the middle of a test by accident.
T0 = datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


def limits(**buckets) -> dict:
    """settings.API_RATE_LIMITS with some buckets replaced: `limits(viewer={"per_minute": 5})`."""
    return {**django_settings.API_RATE_LIMITS, **buckets}


def token_for(user) -> str:
    from accounts.services import token_family_start

    request = RequestFactory().post("/api/v1/auth/login", HTTP_USER_AGENT="rate-limit-tests")
    return token_family_start(user=user, request=request).access


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def refused_total(route: str, role: str) -> float:
    value = observability.metrics_registry().get_sample_value(
        "rp_api_rate_limited_total", {"route": route, "role": role}
    )
    return value or 0.0


def assert_refused(response) -> None:
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert set(response.json()["error"]) >= {"code", "message", "fields"}
    assert int(response["Retry-After"]) >= 1
    assert response["RateLimit-Remaining"] == "0"


@pytest.mark.django_db
def test_it_answers_exactly_the_limit_per_window_then_429_until_the_window_moves(client, viewer, settings):
    before = refused_total(f"GET {ME}", "viewer")
    settings.API_RATE_LIMITS = limits(viewer={"per_minute": 5})
    with time_machine.travel(T0, tick=False) as traveller:
        token = token_for(viewer)
        responses = [client.get(ME, **bearer(token)) for _ in range(10)]
        assert [r.status_code for r in responses] == [200] * 5 + [429] * 5
        assert [r["RateLimit-Remaining"] for r in responses[:5]] == ["4", "3", "2", "1", "0"]
        for response in responses[5:]:
            assert_refused(response)
            assert response["Retry-After"] == "55"  # the minute that started at 10:00:00 ends in 55 s
        assert responses[0]["RateLimit-Limit"] == "5" and responses[0]["RateLimit-Policy"] == "5;w=60"

        traveller.shift(54)  # still the same window
        assert client.get(ME, **bearer(token)).status_code == 429
        traveller.shift(1)  # 10:01:00: a new window, a new budget
        again = [client.get(ME, **bearer(token)).status_code for _ in range(6)]
        assert again == [200] * 5 + [429]
    # A refused call consumes nothing and is counted once, by route and role.
    assert refused_total(f"GET {ME}", "viewer") - before == 7


@pytest.mark.django_db
def test_it_limits_bursts_per_second_within_the_sustained_limit(client, reviewer, settings):
    settings.API_RATE_LIMITS = limits(reviewer={"per_minute": 100, "per_second": 3})
    with time_machine.travel(T0, tick=False) as traveller:
        token = token_for(reviewer)
        statuses = [client.get(ME, **bearer(token)).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        refused = client.get(ME, **bearer(token))
        assert_refused(refused)
        assert refused["Retry-After"] == "1"
        assert refused["RateLimit-Limit"] == "3" and refused["RateLimit-Policy"] == "100;w=60, 3;w=1"
        traveller.shift(1)
        allowed = client.get(ME, **bearer(token))
        assert allowed.status_code == 200
        # Of the two windows, the headers describe the one closest to exhaustion.
        assert (allowed["RateLimit-Limit"], allowed["RateLimit-Remaining"]) == ("3", "2")


_OTHER_PROCESS = """
import os, sys, django, time_machine
from datetime import datetime
django.setup()
from django.test import Client
with time_machine.travel(datetime.fromisoformat(os.environ["RP_NOW"]), tick=False):
    client = Client()
    print("ready", flush=True)
    sys.stdin.readline()
    statuses = [client.get("/api/v1/auth/me", HTTP_AUTHORIZATION="Bearer " + os.environ["RP_TOKEN"]).status_code
                for _ in range(int(os.environ["RP_CALLS"]))]
print(" ".join(map(str, statuses)), flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_two_processes_and_two_threads_share_one_budget(viewer, settings):
    from django.db import connection

    with time_machine.travel(T0, tick=False):
        token = token_for(viewer)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
        "MONGODB_NAME": connection.settings_dict["NAME"],
        "API_RATE_LIMIT_VIEWER_PER_MINUTE": "12",
        "API_RATE_LIMIT_VIEWER_PER_SECOND": "0",
        "RP_NOW": T0.isoformat(),
        "RP_TOKEN": token,
        "RP_CALLS": "10",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _OTHER_PROCESS],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        statuses: list[int] = []

        def calls() -> None:
            client = Client()
            try:
                for _ in range(5):
                    statuses.append(client.get(ME, **bearer(token)).status_code)
            finally:
                close_old_connections()

        settings.API_RATE_LIMITS = limits(viewer={"per_minute": 12})
        with time_machine.travel(T0, tick=False):
            threads = [threading.Thread(target=calls) for _ in range(2)]
            process.stdin.write("go\n")
            process.stdin.flush()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    other = [int(status) for status in output.split()]
    everything = statuses + other
    assert len(everything) == 20
    assert everything.count(200) == 12 and everything.count(429) == 8, (statuses, other)


@pytest.mark.django_db
def test_another_users_budget_is_untouched(client, make_user, settings):
    first, second = make_user("viewer"), make_user("viewer")
    settings.API_RATE_LIMITS = limits(viewer={"per_minute": 3})
    with time_machine.travel(T0, tick=False):
        first_token, second_token = token_for(first), token_for(second)
        assert [client.get(ME, **bearer(first_token)).status_code for _ in range(4)] == [200, 200, 200, 429]
        other = client.get(ME, **bearer(second_token))
        assert other.status_code == 200
        assert other["RateLimit-Remaining"] == "2"
        # A second login of the first user does not buy a second budget: the limit is per user.
        assert client.get(ME, **bearer(token_for(first))).status_code == 429


@pytest.mark.django_db
def test_anonymous_calls_are_limited_per_ip_and_a_spoofed_forwarded_for_does_not_reset_it(settings):
    refresh = "/api/v1/auth/refresh"
    settings.API_RATE_LIMITS = limits(anonymous={"per_minute": 3})
    settings.TRUSTED_PROXY_IPS = ["10.0.0.2"]
    with time_machine.travel(T0, tick=False):
        direct = Client(REMOTE_ADDR="203.0.113.9")
        statuses = [
            direct.post(
                refresh, {"refresh": "junk"}, content_type="application/json", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"
            ).status_code
            for n in range(5)
        ]
        assert statuses == [401, 401, 401, 429, 429]
        # Protected routes with a bad token (authentication fails before the throttle) share the IP's budget.
        assert_refused(direct.get(ME, HTTP_AUTHORIZATION="Bearer not-a-token"))
        # Another client is untouched; behind our proxy, the forwarded address is the client.
        assert Client(REMOTE_ADDR="203.0.113.10").get(ME).status_code == 401
        proxy = Client(REMOTE_ADDR="10.0.0.2")
        behind = [proxy.get(ME, HTTP_X_FORWARDED_FOR="192.0.2.7").status_code for _ in range(4)]
        assert behind == [401, 401, 401, 429]
        assert proxy.get(ME, HTTP_X_FORWARDED_FOR="192.0.2.8").status_code == 401


@pytest.mark.django_db
def test_every_api_answer_carries_the_headers(client, admin_user):
    with time_machine.travel(T0, tick=False):  # one window throughout, so Remaining only goes down
        token = token_for(admin_user)
        answers = {
            "200 me": client.get(ME, **bearer(token)),
            "200 list": client.get("/api/v1/tests", **bearer(token)),
            "404": client.get("/api/v1/tests/0123456789abcdef01234567", **bearer(token)),
            "400": client.post("/api/v1/tests", "{}", content_type="application/json", **bearer(token)),
            "401": client.get(ME),
            "public": client.get("/api/v1/health"),
            "schema": client.get("/api/v1/openapi.json"),
            "export": client.get("/api/v1/exports/cases.csv", **bearer(token)),
        }
    for label, response in answers.items():
        assert response.status_code < 500, label
        for header in HEADERS:
            assert header in response, f"{header} missing on {label} ({response.status_code})"
    assert answers["200 me"].status_code == 200 and answers["404"].status_code == 404
    assert answers["400"].status_code == 400 and answers["401"].status_code == 401
    remaining = [int(answers[label]["RateLimit-Remaining"]) for label in ("200 me", "200 list", "404", "400")]
    assert remaining == [remaining[0] - step for step in range(4)]
    # Browser pages (the htmx-polled dashboard, job pages) are not API routes: not counted, no headers.
    client.force_login(admin_user)
    page = client.get("/dashboard/")
    assert page.status_code == 200 and "RateLimit-Limit" not in page


@pytest.mark.django_db
def test_heavy_routes_have_their_own_bucket(client, admin_user, settings):
    export = "/api/v1/exports/cases.csv"
    settings.API_RATE_LIMITS = limits(heavy={"per_minute": 2}, admin={"per_minute": 50})
    with time_machine.travel(T0, tick=False):
        token = token_for(admin_user)
        statuses = [client.get(export, **bearer(token)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = client.get(export, **bearer(token))
        assert_refused(refused)
        assert refused.json()["error"]["bucket"] == "heavy"
        # Ordinary calls were not charged for the exports, and are still allowed.
        me = client.get(ME, **bearer(token))
        assert me.status_code == 200 and me["RateLimit-Remaining"] == "49"
    assert refused_total(f"GET {export}", "admin") >= 2


def test_every_heavy_route_names_a_real_api_route():
    for entry in django_settings.API_RATE_LIMIT_HEAVY_ROUTES:
        method, path = entry.split(" ", 1)
        assert method in {"GET", "POST", "PUT", "PATCH", "DELETE"}, entry
        match = resolve(path.replace("<", "").replace(">", ""))
        assert f"/{match.route}" == path, f"{entry}: no API route with that pattern"


@pytest.mark.django_db
def test_a_ci_upload_and_minutes_of_progress_polling_stay_within_the_default_limits(reviewer):
    from tests.imports.conftest import valid_file

    client = Client(REMOTE_ADDR="198.51.100.20")
    with time_machine.travel(T0, tick=False) as traveller:
        login = client.post(
            "/api/v1/auth/login",
            {"email": reviewer.email, "password": reviewer.raw_password},
            content_type="application/json",
        )
        assert login.status_code == 200, login.content
        auth = bearer(login.json()["access"])
        upload = SimpleUploadedFile("results.csv", valid_file(5), content_type="text/csv")
        created = client.post("/api/v1/imports/csv", {"file": upload, "dry_run": "true"}, **auth)
        assert created.status_code == 202, created.content
        progress = f"/api/v1/imports/{created.json()['id']}"
        statuses, remaining = [], []
        for _ in range(240):  # a poll every second for 4 minutes, plus the odd burst of three
            response = client.get(progress, **auth)
            statuses.append(response.status_code)
            remaining.append(int(response["RateLimit-Remaining"]))
            if len(statuses) % 30 == 0:
                statuses.extend(client.get(progress, **auth).status_code for _ in range(3))
            traveller.shift(1)
    assert set(statuses) == {200}, statuses.count(429)
    # Counted, with room to spare: never below half of the burst budget (the window closest to exhaustion).
    assert min(remaining) >= django_settings.API_RATE_LIMITS["reviewer"]["per_second"] // 2 > 0
    heavy = django_settings.API_RATE_LIMITS["heavy"]
    assert created["RateLimit-Policy"] == f"{heavy['per_minute']};w=60, {heavy['per_second']};w=1"  # heavy bucket


@pytest.mark.django_db
def test_it_fails_open_when_redis_does_not_answer(client, viewer):
    token = token_for(viewer)
    errors = observability.metrics_registry().get_sample_value("rp_api_rate_limit_errors_total") or 0.0
    # The limits' Redis is unreachable (a closed port); the Django cache itself keeps working.
    with override_settings(CACHE_REDIS_URL="redis://127.0.0.1:9/1", API_RATE_LIMITS=limits(viewer={"per_minute": 1})):
        responses = [client.get(ME, **bearer(token)) for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 200]
    assert "RateLimit-Limit" not in responses[0]
    assert observability.metrics_registry().get_sample_value("rp_api_rate_limit_errors_total") - errors == 3


@pytest.mark.django_db
def test_switched_off_by_setting_nothing_is_counted(client, viewer):
    token = token_for(viewer)
    with override_settings(API_RATE_LIMITS_ENABLED=False, API_RATE_LIMITS=limits(viewer={"per_minute": 1})):
        responses = [client.get(ME, **bearer(token)) for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 200]
    assert "RateLimit-Limit" not in responses[-1]


def test_a_token_scope_is_counted_in_its_own_bucket_per_token(settings):
    """Long-lived CI tokens: their authentication sets the scope and the token id; each token has its budget."""

    def ci_call(token_id: str) -> rate_limits.Decision:
        request = RequestFactory().get(ME, REMOTE_ADDR="198.51.100.30")
        request.rate_limit_scope, request.rate_limit_ident = "ci", token_id
        return rate_limits.check(request)

    settings.API_RATE_LIMITS = limits(ci={"per_minute": 2})
    with time_machine.travel(T0, tick=False):
        assert [ci_call("token-a").allowed for _ in range(3)] == [True, True, False]
        other = ci_call("token-b")
        assert other.allowed and other.bucket == "ci" and other.reported.remaining == 1

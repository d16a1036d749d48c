"""Login cost against one bcrypt verification (QUALITY.md: login p95 <= 1.3 x one bcrypt verify + 50 ms).

Side by side, per iteration: one `check_password` with the production hasher (bcrypt over SHA-256, cost 12), one
API login (`POST /api/v1/auth/login`: allauth's rate-limit bookkeeping in Redis, authentication, a token family and
refresh-token hash written, last_login, the audit event) and one browser login (`POST /accounts/login/`, allauth's
form, session). The target is judged on p95 of each login path.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from benchmarks.table import BenchRow

ITERATIONS = int(os.environ.get("BENCH_LOGIN_ITERATIONS", "15"))
PASSWORD = "bench-login-passphrase-1"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def run() -> list[BenchRow]:
    from allauth.account.models import EmailAddress
    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import override_settings, setup_test_environment, teardown_test_environment

    from accounts.models import User

    setup_test_environment()  # ALLOWED_HOSTS for the test client, locmem mail
    try:
        with override_settings(PASSWORD_HASHERS=["accounts.hashers.BCryptSHA256Cost12PasswordHasher"]):
            User.objects.filter(email="bench.login@example.com").delete()
            user = User.objects.create_user(email="bench.login@example.com", password=PASSWORD, verified=True)
            EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
            assert user.password.startswith("bcrypt_sha256$$2b$12$")
            bcrypt, api, browser = [], [], []
            body = json.dumps({"email": user.email, "password": PASSWORD})
            for _ in range(ITERATIONS + 1):
                cache.clear()
                started = time.perf_counter()
                assert user.check_password(PASSWORD)
                bcrypt.append(time.perf_counter() - started)

                client = Client()
                started = time.perf_counter()
                response = client.post("/api/v1/auth/login", body, content_type="application/json")
                api.append(time.perf_counter() - started)
                assert response.status_code == 200, response.content

                client = Client()
                started = time.perf_counter()
                response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
                browser.append(time.perf_counter() - started)
                assert response.status_code == 302
            bcrypt, api, browser = bcrypt[1:], api[1:], browser[1:]  # the first round warms imports and caches
            user.delete()
    finally:
        teardown_test_environment()

    reference = _p95(bcrypt)
    limit = 1.3 * reference + 0.050
    rows = [
        BenchRow(
            "login", "bcrypt verify p95 (s)", reference, "reference", True, f"p50 {statistics.median(bcrypt):.3f}s"
        ),
    ]
    for name, values in (("API login", api), ("browser login", browser)):
        p95 = _p95(values)
        rows.append(
            BenchRow(
                "login",
                f"{name} p95 (s)",
                p95,
                f"<= 1.3 x bcrypt p95 + 50 ms = {limit:.3f}",
                p95 <= limit,
                f"p50 {statistics.median(values):.3f}s, n={len(values)}",
            )
        )
    return rows

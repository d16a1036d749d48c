"""The JSON API fuzzed from its own OpenAPI schema (schemathesis), through the WSGI app, as an admin with a JWT:
no 5xx anywhere, and every documented response conforms to the schema. Bounded examples per operation so the
whole run stays well under a minute; a fixed seed makes it repeatable.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import RequestFactory
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

EXAMPLES_PER_OPERATION = 6
# Operations whose effect would end the fuzzing session itself rather than test the API's input handling.
SKIPPED: set[tuple[str, str]] = set()
statuses: dict[str, set[int]] = {}


@pytest.fixture
def admin_token(admin_user) -> str:
    from accounts.services import token_family_start

    request = RequestFactory().post("/api/v1/auth/login", HTTP_USER_AGENT="schemathesis")
    return token_family_start(user=admin_user, request=request).access


@pytest.fixture
def generous_heavy_limit():
    """The fuzzer calls each heavy route (imports, exports, reports) several times within seconds, more than the
    `heavy` rate-limit bucket allows: without a bigger budget it would fuzz 429s instead of those endpoints."""
    from django.conf import settings as django_settings
    from django.test import override_settings

    heavy = {"per_minute": 1000, "per_second": 1000}
    with override_settings(API_RATE_LIMITS={**django_settings.API_RATE_LIMITS, "heavy": heavy}):
        yield


@pytest.mark.django_db
def test_the_api_survives_schema_driven_fuzzing_without_5xx(admin_token, reviewer, generous_heavy_limit):
    from report_platform.celery import app as celery_app

    wsgi = get_wsgi_application()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi)
    # identity: the WSGI transport does not decompress what GZipMiddleware would send.
    headers = {"Authorization": f"Bearer {admin_token}", "Accept-Encoding": "identity"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, "the schema lists too few operations: is the API mounted?"
    checked = 0
    try:
        for operation in operations:
            if (operation.method.upper(), operation.path) in SKIPPED:
                continue
            fuzz_operation(operation, headers, failures)
            checked += 1
    finally:
        celery_app.control.purge()  # report/import/AI jobs the fuzzer queued: no worker runs here
    assert checked == len(operations) - len(SKIPPED)
    assert failures == [], "\n\n".join(failures[:10])
    # The admin's token was accepted: reads answered 200, and only the credential endpoints (junk credentials)
    # answered nothing but 401.
    assert 200 in statuses["GET /api/v1/tests"] and 200 in statuses["GET /api/v1/ai/usage"]
    assert [label for label, seen in statuses.items() if seen == {401} and "/auth/" not in label] == []


def fuzz_operation(operation, headers: dict, failures: list[str]) -> None:
    """Run the bounded, derandomised examples of one operation; collect check failures (5xx, schema mismatch)."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def fuzz(case) -> None:
        response = case.call(headers=headers)
        statuses.setdefault(label, set()).add(response.status_code)
        try:
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        except (AssertionError, FailureGroup) as failure:
            failures.append(f"{label}: {failure}")

    fuzz()


@pytest.mark.django_db
@pytest.mark.parametrize("body", ['{"email": "\\ud99a@example.com", "password": "x"}', '{"\\udfff": 1, "email": "a"}'])
def test_a_json_body_with_a_lone_surrogate_is_a_400_not_a_500(client, body):
    """The first failure the fuzzer found: such text cannot be encoded for MongoDB (report_platform/api_parser.py)."""
    response = client.post("/api/v1/auth/login", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"

"""The one error model: JSON envelope for the API, htmx fragment, friendly pages; headers on every response."""

import json

import pytest
from django.test import RequestFactory
from ninja.errors import ValidationError

from report_platform.api import api
from report_platform.errors import Conflict


def test_it_returns_the_envelope_for_an_unknown_api_route(client):
    response = client.get("/api/v1/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "That page or object does not exist.", "fields": {}}
    }


def test_it_renders_validation_errors_in_the_envelope_with_fields():
    request = RequestFactory().post("/api/v1/tests")
    exc = ValidationError([{"loc": ("body", "payload", "title"), "msg": "Field required", "type": "missing"}])
    response = api.on_exception(request, exc)
    assert response.status_code == 400
    assert json.loads(response.content) == {
        "error": {
            "code": "validation_failed",
            "message": "Some fields are not valid.",
            "fields": {"title": ["Field required"]},
        }
    }


def test_it_renders_domain_errors_with_their_code():
    request = RequestFactory().get("/api/v1/x")
    response = api.on_exception(request, Conflict("Already there.", code="duplicate_case"))
    assert response.status_code == 409
    assert json.loads(response.content)["error"]["code"] == "duplicate_case"


def test_it_hides_unexpected_errors_behind_a_coded_500():
    request = RequestFactory().get("/api/v1/x")
    request.request_id = "abc12345"
    response = api.on_exception(request, RuntimeError("secret internals"))
    assert response.status_code == 500
    body = json.loads(response.content)
    assert body["error"]["code"] == "server_error"
    assert "secret" not in response.content.decode()
    assert body["error"]["request_id"] == "abc12345"


@pytest.mark.django_db
def test_it_renders_an_htmx_error_fragment_into_the_messages_area(client):
    response = client.get("/no-such-page/", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert response["HX-Retarget"] == "#messages"
    body = response.content.decode()
    assert 'data-error-code="not_found"' in body
    assert "<html" not in body


@pytest.mark.django_db
def test_it_renders_a_friendly_404_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"<html" in response.content
    assert b"Not found" in response.content


def assert_security_headers(response) -> None:
    csp = response["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/no-such-page/",
        "/api/v1/does-not-exist",
        "/accounts/login/",
        "/api/v1/tests",  # 401 envelope
        "/api/v1/openapi.json",
        "/audit/",  # redirect to the login page
        "/admin/",  # redirect to the login page
        "/healthz",
        "/metrics",
    ],
)
def test_every_response_carries_security_headers_and_a_request_id(client, path):
    assert_security_headers(client.get(path))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/admin/", 200),
        ("/admin/audit/auditevent/", 200),
        ("/admin/audit/auditevent/add/", 403),
        ("/audit/", 200),
        ("/audit/export.csv?date_from=bad", 400),
    ],
)
def test_admin_pages_and_their_errors_carry_the_headers_too(admin_client, path, status):
    response = admin_client.get(path)
    assert response.status_code == status
    assert_security_headers(response)


@pytest.mark.django_db
def test_a_csrf_failure_and_a_wrong_method_carry_the_headers(make_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("viewer"))
    refused = client.post("/accounts/logout/")
    assert refused.status_code == 403
    assert_security_headers(refused)
    wrong_method = client.delete("/api/v1/ai/usage")
    assert wrong_method.status_code == 405
    assert_security_headers(wrong_method)


@pytest.mark.django_db
def test_production_settings_send_the_same_hsts_header_as_nginx(client, settings, monkeypatch):
    """HTTPS responses under production settings carry HSTS with preload, exactly the value nginx sends (nginx
    hides the app's copy, so the two must agree for the preload list submission to hold)."""
    import importlib
    import re
    import sys
    from pathlib import Path

    from report_platform.settings import base

    monkeypatch.setattr(base, "SECRET_KEY", "x" * 64)  # production.py refuses to load without a real key
    monkeypatch.delitem(sys.modules, "report_platform.settings.production", raising=False)
    production = importlib.import_module("report_platform.settings.production")
    monkeypatch.delitem(sys.modules, "report_platform.settings.production")
    for name in ("SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"):
        setattr(settings, name, getattr(production, name))
    response = client.get("/accounts/login/", secure=True)
    assert response.status_code == 200
    assert_security_headers(response)
    nginx_conf = (Path(settings.BASE_DIR) / "deploy" / "nginx" / "nginx.conf").read_text()
    nginx_values = set(re.findall(r'add_header Strict-Transport-Security "([^"]+)" always;', nginx_conf))
    assert nginx_values == {response["Strict-Transport-Security"]}
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "Strict-Transport-Security" not in client.get("/accounts/login/")  # never over plain HTTP


@pytest.mark.django_db
def test_it_keeps_a_safe_incoming_request_id_and_replaces_a_hostile_one(client):
    assert client.get("/", headers={"X-Request-ID": "nginx-req-12345"})["X-Request-ID"] == "nginx-req-12345"
    hostile = client.get("/", headers={"X-Request-ID": "<script>alert(1)</script>"})["X-Request-ID"]
    assert hostile != "<script>alert(1)</script>" and len(hostile) == 32


@pytest.mark.django_db
def test_api_responses_are_gzip_compressed_when_asked(client):
    response = client.get("/api/v1/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"

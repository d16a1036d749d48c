"""The releases API: /api/v1/tests, /tests/{id}, /tests/{id}/runs, /metrics/quality — roles, envelope, no writes
on bad input."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from releases.models import TestCase, TestRun

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _json(client, method, url, body=None):
    kwargs = {"content_type": "application/json"}
    if body is not None:
        kwargs["data"] = json.dumps(body)
    return getattr(client, method)(url, **kwargs)


@pytest.fixture
def seeded(make_case, make_rc, record, suite):
    rc1, rc2 = make_rc("2026.1-rc1"), make_rc("2026.1-rc2")
    a = make_case(key="A-1", owner="ann", category="auth", priority=1)
    b = make_case(key="B-1", owner="bob", category="cart")
    record(a, rc1, "pass")
    record(b, rc1, "pass")
    record(a, rc2, "fail")
    record(b, rc2, "pass")
    return {"rc1": rc1, "rc2": rc2, "a": a, "b": b, "suite": suite}


def _state():
    return (
        list(TestCase.objects.order_by("pk").values_list("key", "title", "owner", "priority", "is_deleted")),
        TestRun.objects.count(),
    )


def test_it_lists_cases_with_filters_and_keyset_pages(viewer, seeded):
    client = _client(viewer)
    page = client.get(f"{API}/tests", {"limit": 1, "rc": "2026.1-rc2"}).json()
    assert [item["key"] for item in page["items"]] == ["A-1"] and page["items"][0]["latest_run"]["status"] == "fail"
    assert page["limit"] == 1 and page["sort"] == "key"
    second = client.get(f"{API}/tests", {"limit": 1, "rc": "2026.1-rc2", "cursor": page["next_cursor"]}).json()
    assert [item["key"] for item in second["items"]] == ["B-1"] and second["next_cursor"] is None
    assert [i["key"] for i in client.get(f"{API}/tests", {"owner": "bob"}).json()["items"]] == ["B-1"]
    assert [i["key"] for i in client.get(f"{API}/tests", {"category": "auth"}).json()["items"]] == ["A-1"]
    assert [i["key"] for i in client.get(f"{API}/tests", {"search": "b-"}).json()["items"]] == ["B-1"]
    failing = client.get(f"{API}/tests", {"rc": str(seeded["rc2"].pk), "status": "fail"}).json()
    assert [i["key"] for i in failing["items"]] == ["A-1"]


BAD_QUERIES = [
    ({"limit": 500}, 400, "validation_failed"),
    ({"sort": "password"}, 400, "invalid_sort"),
    ({"cursor": "!!!"}, 400, "invalid_cursor"),
    ({"status": "fail"}, 400, "status_needs_rc"),
    ({"rc": "nope"}, 404, "unknown_release_candidate"),
    ({"suite": "zz"}, 404, "not_found"),
    ({"include_deleted": "true"}, 403, "forbidden"),
]


def test_it_rejects_bad_list_queries_in_the_envelope(viewer, seeded):
    client = _client(viewer)
    for query, status, code in BAD_QUERIES:
        response = client.get(f"{API}/tests", query)
        assert response.status_code == status, query
        assert response.json()["error"]["code"] == code, query


def test_it_needs_a_login_for_every_endpoint(client, seeded):
    case = seeded["a"]
    for method, url in (
        ("get", f"{API}/tests"),
        ("post", f"{API}/tests"),
        ("get", f"{API}/tests/{case.pk}"),
        ("patch", f"{API}/tests/{case.pk}"),
        ("delete", f"{API}/tests/{case.pk}"),
        ("post", f"{API}/tests/{case.pk}/runs"),
        ("get", f"{API}/metrics/quality"),
    ):
        response = _json(client, method, url, {} if method in ("post", "patch") else None)
        assert response.status_code == 401, (method, url)
        assert response.json()["error"]["code"] == "not_authenticated"


def test_it_creates_updates_and_deletes_cases_by_role(viewer, reviewer, admin_user, seeded):
    body = {"suite": str(seeded["suite"].pk), "key": "NEW-1", "title": "New", "category": "c", "owner": "o"}
    before = _state()
    assert _json(_client(viewer), "post", f"{API}/tests", body).status_code == 403
    assert _state() == before
    created = _json(_client(reviewer), "post", f"{API}/tests", body)
    assert created.status_code == 201 and created.json()["key"] == "NEW-1" and created.json()["priority"] == 3
    case_id = created.json()["id"]
    assert _json(_client(viewer), "patch", f"{API}/tests/{case_id}", {"title": "x"}).status_code == 403
    patched = _json(_client(reviewer), "patch", f"{API}/tests/{case_id}", {"title": "Renamed", "tags": ["smoke"]})
    assert patched.status_code == 200 and patched.json()["title"] == "Renamed" and patched.json()["tags"] == ["smoke"]
    assert _client(viewer).get(f"{API}/tests/{case_id}").json()["title"] == "Renamed"
    refused = _json(_client(reviewer), "delete", f"{API}/tests/{case_id}")
    assert refused.status_code == 403 and not TestCase.objects.get(pk=case_id).is_deleted
    assert _json(_client(admin_user), "delete", f"{API}/tests/{case_id}").status_code == 204
    assert TestCase.objects.get(pk=case_id).is_deleted
    assert _client(viewer).get(f"{API}/tests/{case_id}").status_code == 404
    actions = set(AuditEvent.objects.filter(resource=f"case:{case_id}").values_list("action", "outcome"))
    assert actions >= {
        ("case.create", "success"),
        ("case.update", "success"),
        ("case.delete", "denied"),
        ("case.delete", "success"),
    }


BAD_WRITES = [
    ("post", "/tests", {"key": "X"}, 400, "validation_failed"),
    (
        "post",
        "/tests",
        {"suite": "SUITE", "key": "A-1", "title": "t", "category": "c", "owner": "o"},
        409,
        "duplicate",
    ),
    (
        "post",
        "/tests",
        {"suite": "SUITE", "key": "X 1", "title": "t", "category": "c", "owner": "o"},
        400,
        "invalid_key",
    ),
    (
        "post",
        "/tests",
        {"suite": "SUITE", "key": "X-1", "title": "t", "category": "c", "owner": "o", "priority": 0},
        400,
        "invalid_priority",
    ),
    (
        "post",
        "/tests",
        {"suite": "SUITE", "key": "X-1", "title": "t", "category": "c", "owner": "o", "is_deleted": True},
        400,
        "validation_failed",
    ),
    (
        "post",
        "/tests",
        {"suite": "0" * 24, "key": "X-1", "title": "t", "category": "c", "owner": "o"},
        404,
        "not_found",
    ),
    ("patch", "/tests/CASE", {"created_by": "someone"}, 400, "validation_failed"),
    ("patch", "/tests/CASE", {"title": None}, 400, "null_field"),
    ("patch", "/tests/CASE", {"key": "B-1"}, 409, "duplicate"),
    ("patch", "/tests/not-an-id", {"title": "x"}, 404, "not_found"),
    ("post", "/tests/CASE/runs", {"rc": "2026.1-rc2", "status": "maybe"}, 400, "validation_failed"),
    ("post", "/tests/CASE/runs", {"rc": "missing", "status": "pass"}, 404, "unknown_release_candidate"),
    (
        "post",
        "/tests/CASE/runs",
        {"rc": "2026.1-rc2", "status": "pass", "mantis_ids": ["x1"]},
        400,
        "invalid_mantis_id",
    ),
    (
        "post",
        "/tests/CASE/runs",
        {"rc": "2026.1-rc2", "status": "pass", "executed_at": "2030-01-01T00:00:00Z"},
        400,
        "invalid_executed_at",
    ),
    (
        "post",
        "/tests/CASE/runs",
        {"rc": "2026.1-rc2", "status": "pass", "executed_by": "x"},
        400,
        "validation_failed",
    ),
    ("post", "/tests/000000000000000000000000/runs", {"rc": "2026.1-rc2", "status": "pass"}, 404, "not_found"),
]


def test_it_rejects_bad_writes_in_the_envelope_and_changes_nothing(reviewer, seeded):
    client = _client(reviewer)
    before = _state()
    events = AuditEvent.objects.count()
    for method, path, body, status, code in BAD_WRITES:
        path = path.replace("CASE", str(seeded["a"].pk))
        if body.get("suite") == "SUITE":
            body = {**body, "suite": str(seeded["suite"].pk)}
        response = _json(client, method, f"{API}{path}", body)
        assert response.status_code == status, (method, path, body, response.content)
        assert response.json()["error"]["code"] == code, (method, path, body)
    assert _state() == before
    assert AuditEvent.objects.count() == events


def test_it_records_runs_for_reviewers_only(viewer, reviewer, seeded):
    url = f"{API}/tests/{seeded['b'].pk}/runs"
    body = {"rc": "2026.1-rc2", "status": "fail", "mantis_ids": [321, "#322"], "notes": "Total is off"}
    assert _json(_client(viewer), "post", url, body).status_code == 403
    response = _json(_client(reviewer), "post", url, body)
    assert response.status_code == 201
    run = response.json()
    assert run["status"] == "fail" and run["is_latest"] and run["mantis_ids"] == [321, 322]
    assert run["release_candidate"] == "2026.1-rc2" and run["executed_by"] == str(reviewer.pk)
    assert TestRun.objects.get(pk=run["id"]).is_latest


def test_it_reports_quality_metrics_deltas_and_the_gate(viewer, seeded):
    client = _client(viewer)
    body = client.get(f"{API}/metrics/quality", {"rc": "2026.1-rc2"}).json()
    assert body["totals"] == {
        "pass": 1,
        "fail": 1,
        "pending": 0,
        "total": 2,
        "pass_rate": 50.0,
        "in_scope": 2,
        "executed": 2,
        "not_run": 0,
        "coverage": 100.0,
    }
    assert [row["name"] for row in body["by_owner"]] == ["ann", "bob"]
    assert [row["name"] for row in body["by_category"]] == ["auth", "cart"]
    assert [row["release_candidate"] for row in body["trend"]] == ["2026.1-rc1", "2026.1-rc2"]
    assert body["delta"]["baseline"]["name"] == "2026.1-rc1"
    assert [item["key"] for item in body["delta"]["new_failures"]] == ["A-1"]
    assert body["gate"]["verdict"] == "NO-GO" and body["gate"]["new_p1_failures"] == ["A-1"]
    against_self = client.get(
        f"{API}/metrics/quality", {"rc": "2026.1-rc2", "baseline": "2026.1-rc2", "delta": "false"}
    ).json()
    assert against_self["delta"] is None
    default = client.get(f"{API}/metrics/quality").json()
    assert default["release_candidate"]["name"] == "2026.1-rc2"
    bad = client.get(f"{API}/metrics/quality", {"trend_limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_failed"


def test_it_lists_every_operation_in_the_openapi_schema(client):
    paths = client.get(f"{API}/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/tests"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/tests/{case_id}"])
    assert "post" in paths["/api/v1/tests/{case_id}/runs"] and "get" in paths["/api/v1/metrics/quality"]

"""The rule table (releases/rules.py) is the one source of every field limit: each write path (page form, API POST
and PATCH, CSV importer) accepts the limit and refuses limit + 1 with the same code; a new RC gets the same sequence
from the services and from bulk imports; data an older rule let in stays editable."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from imports import csvformat
from releases import bulk, rules, services
from releases.models import ReleaseCandidate, TestCase, TestRun, TestSuite
from tests.imports.conftest import case_row, csv_bytes

API = "/api/v1"
R = rules

# (field, accepted value, refused value, code). A callable value takes a label, so each path writes its own
# distinct key. Values are as the API takes them; `_form_value` / `_csv_value` spell them for the other paths.
CASE_LIMITS = [
    (
        "key",
        lambda label: label.ljust(R.KEY_MAX_LENGTH, "K"),
        lambda label: label.ljust(R.KEY_MAX_LENGTH + 1, "K"),
        "too_long",
    ),
    ("key", lambda label: f"{label}.b_c:d/e-1", lambda label: f"{label} 1", "invalid_key"),
    ("title", "t" * R.TITLE_MAX_LENGTH, "t" * (R.TITLE_MAX_LENGTH + 1), "too_long"),
    ("category", "c" * R.CATEGORY_MAX_LENGTH, "c" * (R.CATEGORY_MAX_LENGTH + 1), "too_long"),
    ("task", "k" * R.TASK_MAX_LENGTH, "k" * (R.TASK_MAX_LENGTH + 1), "too_long"),
    ("owner", "o" * R.OWNER_MAX_LENGTH, "o" * (R.OWNER_MAX_LENGTH + 1), "too_long"),
    ("priority", R.PRIORITY_MAX, R.PRIORITY_MAX + 1, "invalid_priority"),
    ("priority", R.PRIORITY_MIN, R.PRIORITY_MIN - 1, "invalid_priority"),
    ("tags", [f"t{n}" for n in range(R.TAGS_MAX)], [f"t{n}" for n in range(R.TAGS_MAX + 1)], "invalid_tag"),
    ("tags", ["x" * R.TAG_MAX_LENGTH], ["x" * (R.TAG_MAX_LENGTH + 1)], "invalid_tag"),
]
RUN_LIMITS = [
    ("notes", "n" * R.NOTES_MAX_LENGTH, "n" * (R.NOTES_MAX_LENGTH + 1), "notes_too_long"),
    (
        "mantis_ids",
        list(range(1, R.MANTIS_IDS_PER_RUN_MAX + 1)),
        list(range(1, R.MANTIS_IDS_PER_RUN_MAX + 2)),
        "invalid_mantis_id",
    ),
    ("mantis_ids", [R.MANTIS_ID_MAX], [R.MANTIS_ID_MAX + 1], "invalid_mantis_id"),
]
# Suites and RCs are created on pages and by imports (the API has no endpoint for them): (form, form field, CSV
# column, accepted, refused, code).
NAME_LIMITS = [
    ("suite", "name", "suite", "s" * R.SUITE_NAME_MAX_LENGTH, "s" * (R.SUITE_NAME_MAX_LENGTH + 1), "too_long"),
    ("suite", "product", "product", "p" * R.PRODUCT_MAX_LENGTH, "p" * (R.PRODUCT_MAX_LENGTH + 1), "too_long"),
    ("rc", "name", "rc", "r" * R.RC_NAME_MAX_LENGTH, "r" * (R.RC_NAME_MAX_LENGTH + 1), "too_long"),
    ("rc", "name", "rc", "Release 2.1 rc/3+hotfix#2", "rc<script>", "invalid_rc_name"),
]


def _value(value, label: str):
    return value(label) if callable(value) else value


def _form_value(field: str, value):
    if field in ("tags", "mantis_ids"):
        return ", ".join(str(item) for item in value)
    return value


def _csv_value(field: str, value) -> str:
    if field in ("tags", "mantis_ids"):
        return csvformat.LIST_SEPARATOR.join(str(item) for item in value)
    return str(value)


def _csv_errors(**cells) -> list[dict]:
    """Validate a one-row CSV (the importer's per-row validation; nothing is written)."""
    data = csv_bytes([case_row(1, **cells)])
    return csvformat.validate(lambda: [data], max_rows=10, max_errors=50, preview_rows=0).errors


def _json(client: Client, method: str, url: str, body: dict):
    return getattr(client, method)(url, data=json.dumps(body), content_type="application/json")


def _api_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _case_form(suite, **fields) -> dict:
    form = {"suite": suite.pk, "key": "F-1", "title": "t", "category": "c", "owner": "o", "priority": 3, "tags": ""}
    form.update(fields)
    return form


def _refused_on_page(response, code: str) -> bool:
    return response.status_code == 400 and f'data-error-code="{code}"' in response.content.decode()


# --- cases ---------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_applies_every_case_limit_on_the_case_form(reviewer_client, suite):
    for number, (field, accepted, refused, code) in enumerate(CASE_LIMITS):
        label = f"F{number}"
        good = _case_form(suite, **{"key": f"{label}-ok", field: _form_value(field, _value(accepted, label))})
        response = reviewer_client.post(reverse("releases:case_create"), good)
        assert response.status_code == 302, (field, response.content[:300])
        bad = _case_form(suite, **{"key": f"{label}-bad", field: _form_value(field, _value(refused, label))})
        response = reviewer_client.post(reverse("releases:case_create"), bad)
        assert _refused_on_page(response, code), (field, code, response.status_code)
    assert TestCase.objects.count() == len(CASE_LIMITS)


@pytest.mark.django_db
def test_it_applies_every_case_limit_in_the_api_post_and_patch(reviewer, suite, make_case):
    client = _api_client(reviewer)
    target = make_case(key="PATCH-ME")
    for number, (field, accepted, refused, code) in enumerate(CASE_LIMITS):
        label = f"A{number}"
        body = {"suite": str(suite.pk), "key": f"{label}-ok", "title": "t", "category": "c", "owner": "o"}
        response = _json(client, "post", f"{API}/tests", {**body, field: _value(accepted, label)})
        assert response.status_code == 201, (field, response.content[:300])
        response = _json(client, "post", f"{API}/tests", {**body, "key": f"{label}-bad", field: _value(refused, label)})
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), field
        patch_label = f"P{number}"
        response = _json(client, "patch", f"{API}/tests/{target.pk}", {field: _value(accepted, patch_label)})
        assert response.status_code == 200, (field, response.content[:300])
        response = _json(client, "patch", f"{API}/tests/{target.pk}", {field: _value(refused, patch_label)})
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), field


def test_it_applies_every_case_limit_in_the_csv_importer():
    for field, accepted, refused, code in CASE_LIMITS:
        assert _csv_errors(rc="", **{field: _csv_value(field, _value(accepted, "C"))}) == [], field
        errors = _csv_errors(rc="", **{field: _csv_value(field, _value(refused, "C"))})
        assert [(error["code"], error["row"], error["column"]) for error in errors] == [(code, 2, field)], field


# --- runs ----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_applies_every_run_limit_on_the_run_form_and_in_the_api(reviewer, reviewer_client, make_case, make_rc):
    case, rc = make_case(), make_rc("RC-1")
    client = _api_client(reviewer)
    url = reverse("releases:run_record", args=[case.pk])
    for field, accepted, refused, code in RUN_LIMITS:
        form = {"release_candidate": rc.pk, "status": "fail"}
        response = reviewer_client.post(url, {**form, field: _form_value(field, accepted)})
        assert response.status_code == 302, (field, response.content[:300])
        response = reviewer_client.post(url, {**form, field: _form_value(field, refused)})
        assert _refused_on_page(response, code), (field, code, response.status_code)
        body = {"rc": "RC-1", "status": "fail"}
        response = _json(client, "post", f"{API}/tests/{case.pk}/runs", {**body, field: accepted})
        assert response.status_code == 201, (field, response.content[:300])
        response = _json(client, "post", f"{API}/tests/{case.pk}/runs", {**body, field: refused})
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), field
    assert TestRun.objects.count() == 2 * len(RUN_LIMITS)


def test_it_applies_every_run_limit_in_the_csv_importer():
    for field, accepted, refused, code in RUN_LIMITS:
        assert _csv_errors(**{field: _csv_value(field, accepted)}) == [], field
        errors = _csv_errors(**{field: _csv_value(field, refused)})
        assert [(error["code"], error["row"], error["column"]) for error in errors] == [(code, 2, field)], field


def test_it_refuses_an_unknown_status_in_the_csv_importer_with_the_rule_code():
    assert [error["code"] for error in _csv_errors(status="skipped")] == ["invalid_status"]
    assert set(R.RUN_STATUSES) == {"pass", "fail", "pending"}


# --- suites and RCs ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_applies_suite_and_rc_name_limits_on_their_forms(reviewer_client):
    for number, (form, field, _column, accepted, refused, code) in enumerate(NAME_LIMITS):
        if form == "suite":
            url, base = reverse("releases:suite_create"), {"name": f"S{number}", "product": f"P{number}"}
            expected = 302
        else:
            url, base = reverse("releases:rc_create"), {"name": "x", "state": "testing", "product": "P0"}
            expected = 302
        response = reviewer_client.post(url, {**base, field: accepted})
        assert response.status_code == expected, (form, field, response.content[:300])
        response = reviewer_client.post(url, {**base, field: refused})
        assert _refused_on_page(response, code), (form, field, code, response.status_code)
    assert ReleaseCandidate.objects.count() == 2 and TestSuite.objects.count() == 2


def test_it_applies_suite_and_rc_name_limits_in_the_csv_importer():
    for _form, _field, column, accepted, refused, code in NAME_LIMITS:
        assert _csv_errors(**{column: accepted}) == [], column
        errors = _csv_errors(**{column: refused})
        assert [(error["code"], error["row"], error["column"]) for error in errors] == [(code, 2, column)], column


def test_the_models_hold_the_rule_table_lengths():
    """The database schema's lengths are the table's, so `full_clean` never disagrees with a rule."""
    for model, field, limit in [
        (TestCase, "key", R.KEY_MAX_LENGTH),
        (TestCase, "title", R.TITLE_MAX_LENGTH),
        (TestCase, "category", R.CATEGORY_MAX_LENGTH),
        (TestCase, "task", R.TASK_MAX_LENGTH),
        (TestCase, "owner", R.OWNER_MAX_LENGTH),
        (TestSuite, "name", R.SUITE_NAME_MAX_LENGTH),
        (TestSuite, "product", R.PRODUCT_MAX_LENGTH),
        (ReleaseCandidate, "name", R.RC_NAME_MAX_LENGTH),
    ]:
        assert model._meta.get_field(field).max_length == limit, (model.__name__, field)
    assert TestCase._meta.get_field("tags").base_field.max_length == R.TAG_MAX_LENGTH


# --- RC sequence ---------------------------------------------------------------------------------------------------


class _NoJournal:
    def before_insert(self, collection, ids):
        pass

    def before_update(self, collection, documents):
        pass


def _bulk_create_rc(name: str) -> int:
    state = bulk.BulkState()
    bulk._release_candidates_resolve([SimpleNamespace(rc=name, product="Web Shop")], state=state, journal=_NoJournal())
    return connection.database[bulk.RELEASE_CANDIDATES].find_one({"name": name})["sequence"]


@pytest.mark.django_db
def test_a_new_rc_gets_the_same_sequence_from_the_services_and_from_bulk_imports(reviewer):
    assert R.next_rc_sequence(None) == 10 and R.next_rc_sequence(30) == 40
    assert _bulk_create_rc("imported-1") == R.next_rc_sequence(None)
    created = services.release_candidate_create(name="page-1", actor=reviewer)
    assert created.sequence == R.next_rc_sequence(R.next_rc_sequence(None))
    assert _bulk_create_rc("imported-2") == R.next_rc_sequence(created.sequence)
    latest = ReleaseCandidate.objects.order_by("-sequence").first()
    assert services.release_candidate_create(name="page-2", actor=reviewer).sequence == R.next_rc_sequence(
        latest.sequence
    )


# --- data an older rule let in -------------------------------------------------------------------------------------


@pytest.fixture
def legacy_case(suite) -> TestCase:
    """A case as an older importer stored it: a key with a space and more tags than the table allows."""
    tags = [f"legacy{n}" for n in range(R.TAGS_MAX + 5)]
    return TestCase.objects.create(
        suite=suite, key="LOGIN 001", title="Old title", category="auth", owner="ann", tags=tags
    )


@pytest.mark.django_db
def test_a_case_with_a_legacy_key_stays_editable_on_its_edit_page(reviewer_client, legacy_case):
    url = reverse("releases:case_edit", args=[legacy_case.pk])
    form = _case_form(
        legacy_case.suite,
        key="LOGIN 001",
        title="New title",
        category="auth",
        owner="ann",
        tags=", ".join(legacy_case.tags),
    )
    response = reviewer_client.post(url, form)
    assert response.status_code == 302, response.content[:400]
    legacy_case.refresh_from_db()
    assert (legacy_case.key, legacy_case.title, len(legacy_case.tags)) == ("LOGIN 001", "New title", R.TAGS_MAX + 5)
    response = reviewer_client.post(url, {**form, "key": "LOGIN 002"})
    assert _refused_on_page(response, "invalid_key")
    response = reviewer_client.post(url, {**form, "tags": form["tags"] + ", one-more"})
    assert _refused_on_page(response, "invalid_tag")
    legacy_case.refresh_from_db()
    assert legacy_case.key == "LOGIN 001"


@pytest.mark.django_db
def test_a_case_with_a_legacy_key_stays_editable_through_the_api(reviewer, legacy_case):
    client = _api_client(reviewer)
    url = f"{API}/tests/{legacy_case.pk}"
    response = _json(client, "patch", url, {"key": "LOGIN 001", "tags": legacy_case.tags, "title": "Via API"})
    assert response.status_code == 200, response.content[:300]
    assert response.json()["title"] == "Via API"
    response = _json(client, "patch", url, {"key": "LOGIN 002"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_key")


def test_the_importer_refuses_the_keys_the_form_refuses():
    errors = _csv_errors(key="LOGIN 001")
    assert [(error["code"], error["row"], error["column"]) for error in errors] == [("invalid_key", 2, "key")]

"""Exports (admin only, audited, formula cells neutralised) and export -> import round trips; the property tests:
any byte string gives success or a coded error; write -> import round-trips exactly."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from imports import csvformat
from releases import rules
from releases.models import ReleaseCandidate, TestCase, TestRun
from tests.imports.conftest import case_row, csv_bytes

FORMULAS = ["=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "'quoted", '=HYPERLINK("http://x")']


def _seed_file() -> bytes:
    rows = [case_row(n, rc="RC-1", day=n) for n in range(1, 4)]
    rows += [case_row(1, rc="RC-1", day=20, status="fail", mantis_ids="12|34", notes="=cmd|' /C calc'!A0")]
    rows += [case_row(10 + n, rc="", title=formula, notes="") for n, formula in enumerate(FORMULAS)]
    rows += [case_row(30, rc="RC-1", day=5, notes='multi\r\nline "quoted"', tags="", priority="4")]
    return csv_bytes(rows)


def _content(response) -> bytes:
    return b"".join(response.streaming_content)


def _state():
    cases = sorted(
        TestCase.objects.values_list(
            "suite__product", "suite__name", "key", "title", "category", "task", "owner", "priority", "tags"
        )
    )
    runs = sorted(
        (
            run.case.key,
            run.release_candidate.name,
            run.status,
            run.mantis_ids,
            run.notes,
            run.executed_at,
            run.is_latest,
        )
        for run in TestRun.objects.select_related("case", "release_candidate")
    )
    return cases, runs


@pytest.mark.django_db
def test_it_exports_cases_and_runs_that_import_back_identically(admin_client, upload, run_job, admin_user):
    run_job(upload(_seed_file()))
    before = _state()
    rc = ReleaseCandidate.objects.get(name="RC-1")
    cases_csv = admin_client.get("/imports/export/cases.csv")
    runs_csv = admin_client.get(f"/api/v1/exports/runs.csv?rc={rc.pk}")
    assert cases_csv.status_code == 200 and runs_csv.status_code == 200
    assert cases_csv["Content-Disposition"].startswith("attachment")
    assert cases_csv["Cache-Control"] == "no-store" and cases_csv["X-Content-Type-Options"] == "nosniff"
    cases_data, runs_data = _content(cases_csv), _content(runs_csv)
    assert AuditEvent.objects.filter(action="export.csv").count() == 2
    # Every cell a spreadsheet would evaluate starts with an apostrophe.
    for data in (cases_data, runs_data):
        for row in csv.reader(io.StringIO(data.decode())):
            for cell in row:
                assert not cell or cell[0] not in "=+-@\t\r", cell
    assert "'=1+1" in cases_data.decode() and "'@SUM(A1)" in cases_data.decode()
    # Wipe and import the exports: the same cases and runs come back.
    from django.db import connection

    for name in ("testRuns", "testCases", "testSuites", "releaseCandidates", "qualitySummaries"):
        connection.database[name].delete_many({})
    job, _ = run_job(upload(cases_data, name="cases.csv"))
    assert job.status == "succeeded", job.errors
    job, _ = run_job(upload(runs_data, name="runs.csv"))
    assert job.status == "succeeded", job.errors
    assert _state() == before


@pytest.mark.django_db
def test_it_reimports_its_own_export_as_a_no_op(admin_client, upload, run_job):
    run_job(upload(_seed_file()))
    rc = ReleaseCandidate.objects.get(name="RC-1")
    data = _content(admin_client.get(f"/imports/export/runs.csv?rc={rc.name}"))
    job, _ = run_job(upload(data))
    assert job.result["runs_created"] == 0 and job.result["runs_updated"] == 0 and job.result["cases_updated"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/imports/export/cases.csv", "/imports/export/runs.csv?rc=RC-1", "/api/v1/exports/cases.csv"]
)
def test_it_allows_exports_to_admins_only(url, reviewer_client):
    response = reviewer_client.get(url)
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="export.csv").count() == 0


@pytest.mark.django_db
def test_it_reports_an_unknown_release_candidate(admin_client):
    assert admin_client.get("/api/v1/exports/runs.csv?rc=nope").status_code == 404
    assert admin_client.get("/api/v1/exports/runs.csv").status_code == 400


@pytest.mark.django_db
def test_it_serves_a_template_that_imports_cleanly(viewer_client, upload):
    data = _content(viewer_client.get("/imports/template.csv"))
    assert data.startswith(b"product,suite,key,title")
    job = upload(data)
    assert job.status == "previewed" and job.total == 2, job.errors


# --- properties ----------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_it_never_raises_anything_but_coded_errors_on_arbitrary_bytes(data):
    report = csvformat.validate(lambda: [data[:700], data[700:]], max_rows=100, max_errors=50, preview_rows=5)
    for error in report.errors:
        assert set(error) == {"row", "column", "code", "message"}
        assert error["code"] and error["message"]
    if report.error_count == 0:
        assert len(list(csvformat.iter_records(lambda: [data]))) == report.total


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(['"', ",", ";", "\t", "\r", "\n", "a", "é", "=", "'", "\x00", "\ufeff"]), max_size=80))
def test_it_never_raises_on_csv_shaped_noise(tokens):
    header = b"product,suite,key,title,category,owner\r\n"
    report = csvformat.validate(
        lambda: [header + "".join(tokens).encode()], max_rows=100, max_errors=50, preview_rows=5
    )
    assert all(error["code"] for error in report.errors)


_identifier = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp"), blacklist_characters="|"),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)
_free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cf"), blacklist_characters="\x00"), max_size=60
)
# Keys and RC names follow the rule table's patterns (releases/rules.py): the importer refuses what the forms refuse.
_key = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,29}", fullmatch=True)
_rc_name = st.from_regex(r"[^\W_][\w .:/+#-]{0,29}", fullmatch=True).map(str.strip).filter(rules.RC_NAME.accepts)
_record = st.fixed_dictionaries(
    {
        "product": _identifier,
        "suite": _identifier,
        "key": _key,
        "title": _free_text.filter(bool),
        "category": _identifier,
        "task": _free_text,
        "owner": _identifier,
        "priority": st.integers(1, 4),
        "tags": st.lists(_identifier.filter(lambda tag: len(tag) <= 50), max_size=3, unique=True),
        "rc": _rc_name,
        "status": st.sampled_from(["pass", "fail", "pending"]),
        "mantis_ids": st.lists(st.integers(1, 999_999_999), max_size=3, unique=True),
        "notes": _free_text,
        "executed_at": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
            lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000, tzinfo=UTC)
        ),
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        _record, min_size=1, max_size=5, unique_by=lambda record: (record["product"], record["suite"], record["key"])
    )
)
def test_it_round_trips_what_it_writes(records):
    data = "".join(csvformat.write_rows(records)).encode()
    report = csvformat.validate(lambda: [data], max_rows=100, max_errors=50, preview_rows=5)
    assert report.errors == []
    parsed = list(csvformat.iter_records(lambda: [data]))
    assert len(parsed) == len(records)
    for record, back in zip(records, parsed, strict=True):
        for name, value in record.items():
            assert getattr(back, name) == value, name

"""QUALITY.md section D: the untrusted-CSV corpus through POST /api/v1/imports/csv.

Every rejected file: a coded error with row/column, no 5xx, the database unchanged, one audit event. Every file
that must succeed (BOM, quoted newlines, mixed line endings, `;`/TAB, HTML, formulas, hostile names) imports.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from imports.models import ImportJob
from releases.models import TestCase, TestRun
from tests.imports.conftest import HEADER, RUN_HEADER, case_row, csv_bytes, db_snapshot, valid_file

pytestmark = pytest.mark.django_db

URL = "/api/v1/imports/csv"
GOOD = valid_file(3)
HEADER_LINE = ",".join(RUN_HEADER)


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cases.csv", GOOD)
    return buffer.getvalue()


def _line(*cells: str) -> str:
    return ",".join(cells)


ROW = _line(*case_row(1))
REJECTED = {
    "empty file": (b"", "empty_file", 1, None),
    "only blank lines": (b"\r\n\r\n", "empty_file", 1, None),
    "header only": (HEADER_LINE.encode() + b"\r\n", "no_rows", 2, None),
    "utf-16 le": (("\ufeff" + HEADER_LINE + "\r\n" + ROW).encode("utf-16-le"), "unsupported_encoding", 1, None),
    "utf-16 be": (("\ufeff" + HEADER_LINE + "\r\n" + ROW).encode("utf-16-be"), "unsupported_encoding", 1, None),
    "utf-16 without bom": ((HEADER_LINE + "\r\n" + ROW).encode("utf-16-le"), "nul_byte", 1, None),
    "latin-1 bytes": (
        (HEADER_LINE + "\r\n" + ROW.replace("Case number", "Caf\xe9")).encode("latin-1"),
        "invalid_encoding",
        2,
        None,
    ),
    "png renamed": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not_csv", 1, None),
    "zip renamed": (_zip_bytes(), "not_csv", 1, None),
    "pdf renamed": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not_csv", 1, None),
    "nul byte": (
        (HEADER_LINE + "\r\n" + ROW + "\r\n" + ROW.replace("CASE-00001", "CASE\x0002")).encode(),
        "nul_byte",
        3,
        None,
    ),
    "missing required column": (
        csv_bytes([[c for i, c in enumerate(case_row(1)) if i != 6]], header=[h for h in RUN_HEADER if h != "owner"]),
        "missing_column",
        1,
        "owner",
    ),
    "unknown column": (csv_bytes([[*case_row(1), "x"]], header=[*RUN_HEADER, "colour"]), "unknown_column", 1, "colour"),
    "duplicate header": (csv_bytes([[*case_row(1), "x"]], header=[*RUN_HEADER, "Key"]), "duplicate_column", 1, "Key"),
    "operator header": (
        csv_bytes([[*case_row(1), "x"]], header=[*RUN_HEADER, "$where"]),
        "invalid_column_name",
        1,
        "$where",
    ),
    "dotted header": (csv_bytes([[*case_row(1), "x"]], header=[*RUN_HEADER, "a.b"]), "invalid_column_name", 1, "a.b"),
    "same case key twice": (csv_bytes([case_row(1, rc=""), case_row(1, rc="")]), "duplicate_key", 3, "key"),
    "same run twice": (csv_bytes([case_row(1), case_row(1)]), "duplicate_key", 3, "key"),
    "same case, other values": (
        csv_bytes([case_row(1, day=1), case_row(1, day=2, title="Other")]),
        "conflicting_case",
        3,
        "key",
    ),
    "too few cells": (
        (HEADER_LINE + "\r\n" + ROW + "\r\n" + "Shop,Checkout,CASE-2\r\n").encode(),
        "ragged_row",
        3,
        None,
    ),
    "too many cells": ((HEADER_LINE + "\r\n" + ROW + ",extra\r\n").encode(), "ragged_row", 2, None),
    "unterminated quote": (
        (HEADER_LINE + "\r\n" + ROW + "\r\n" + ROW.replace("Case number 1", '"Case number')).encode(),
        "unterminated_quote",
        3,
        None,
    ),
    "giant field": (csv_bytes([case_row(1, notes="x" * 200_000)]), "field_too_large", 2, "notes"),
    "title too long": (csv_bytes([case_row(1, title="t" * 301)]), "too_long", 2, "title"),
    "bad status": (csv_bytes([case_row(1, status="passed")]), "invalid_status", 2, "status"),
    "bad date": (csv_bytes([case_row(1, executed_at="2026-13-45")]), "invalid_date", 2, "executed_at"),
    "bad priority": (csv_bytes([case_row(1, priority="urgent")]), "invalid_priority", 2, "priority"),
    "bad mantis id": (csv_bytes([case_row(1, mantis_ids="12|abc")]), "invalid_mantis_id", 2, "mantis_ids"),
    "blank required value": (csv_bytes([case_row(1, owner="  ")]), "required", 2, "owner"),
    "rtl override": (csv_bytes([case_row(1, title="invoice\u202egnp.exe")]), "bidi_control", 2, "title"),
    "zero-width in key": (csv_bytes([case_row(1, key="CASE\u200b-1")]), "invisible_character", 2, "key"),
    "unknown executed_by": (
        csv_bytes([case_row(1, executed_by="ghost@example.com")]),
        "unknown_user",
        2,
        "executed_by",
    ),
}


@pytest.fixture
def seeded(upload, run_job):
    """Existing data the rejected files must not touch."""
    run_job(upload(csv_bytes([case_row(1, title="Existing"), case_row(50)])))
    return db_snapshot()


@pytest.mark.parametrize("name", list(REJECTED))
def test_it_rejects_bad_files_with_a_coded_error_and_changes_nothing(name, seeded, reviewer_client):
    data, code, row, column = REJECTED[name]
    audit_before = AuditEvent.objects.filter(action="import.csv", outcome="failure").count()
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("bad.csv", data, "text/csv")})
    assert response.status_code == 400, response.content[:300]
    body = response.json()["error"]
    assert body["code"] == "import_invalid"
    errors = body["job"]["errors"]
    assert errors, body
    matching = [error for error in errors if error["code"] == code]
    assert matching, errors
    assert matching[0]["row"] == row
    assert matching[0]["column"] == column
    assert matching[0]["message"]
    assert db_snapshot() == seeded
    assert AuditEvent.objects.filter(action="import.csv", outcome="failure").count() == audit_before + 1
    assert ImportJob.objects.get(pk=body["job"]["id"]).status == ImportJob.Status.INVALID


def _crlf_in_field() -> bytes:
    return csv_bytes([case_row(1, notes="line one\r\nline two\nline three\rend"), case_row(2)])


ACCEPTED = {
    "utf-8 bom": (csv_bytes([case_row(1), case_row(2)], bom=True), 2),
    "quoted cr/lf inside a field": (_crlf_in_field(), 2),
    "mixed line endings": (
        (
            HEADER_LINE + "\n" + _line(*case_row(1)) + "\r\n" + _line(*case_row(2)) + "\r" + _line(*case_row(3)) + "\n"
        ).encode(),
        3,
    ),
    "semicolon delimiter": (csv_bytes([case_row(1), case_row(2)], delimiter=";"), 2),
    "tab delimiter": (csv_bytes([case_row(1), case_row(2)], delimiter="\t"), 2),
    "case-insensitive headers": (csv_bytes([case_row(1)], header=[name.upper() for name in RUN_HEADER]), 1),
    "html payload": (
        csv_bytes([case_row(1, title="<script>alert(1)</script>", notes="<img src=x onerror=alert(2)>")]),
        1,
    ),
    "formula cells": (
        csv_bytes([case_row(1, title="=1+1", task="+1", notes="-2", owner="@SUM(A1)"), case_row(2, title="\t=1")]),
        2,
    ),
    "cases only": (csv_bytes([row[:9] for row in (case_row(1), case_row(2))], header=HEADER), 2),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_it_accepts_valid_variants(name, reviewer_client, run_job):
    data, rows = ACCEPTED[name]
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("ok.csv", data, "text/csv"), "dry_run": "true"})
    assert response.status_code == 202, response.content[:500]
    body = response.json()
    assert body["status"] == "previewed" and body["total"] == rows and body["error_count"] == 0
    job, _ = run_job(ImportJob.objects.get(pk=body["id"]))
    assert job.status == ImportJob.Status.SUCCEEDED, (job.failure_code, job.failure_message)
    assert TestCase.objects.count() == rows


def test_it_preserves_newlines_inside_quoted_fields(reviewer_client, upload, run_job):
    run_job(upload(_crlf_in_field()))
    assert TestRun.objects.get(case__key="CASE-00001").notes == "line one\r\nline two\nline three\rend"


def test_it_stores_formula_cells_as_text(upload, run_job):
    run_job(upload(ACCEPTED["formula cells"][0]))
    case = TestCase.objects.get(key="CASE-00001")
    assert (case.title, case.task, case.owner) == ("=1+1", "+1", "@SUM(A1)")
    assert TestRun.objects.get(case=case).notes == "-2"
    assert TestCase.objects.get(key="CASE-00002").title == "\t=1"


def test_it_shows_html_payloads_escaped_in_the_preview(reviewer_client, upload):
    job = upload(ACCEPTED["html payload"][0])
    page = reviewer_client.get(reverse("imports:import_detail", args=[job.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page


def test_it_refuses_a_file_one_byte_over_the_limit_before_parsing(settings, reviewer_client, monkeypatch, seeded):
    from imports import csvformat

    settings.CSV_MAX_UPLOAD_BYTES = 4096
    monkeypatch.setattr(csvformat, "validate", lambda *a, **k: pytest.fail("parsed an over-sized file"))
    jobs_before = ImportJob.objects.count()
    data = GOOD + b"x" * (4096 + 1 - len(GOOD))
    assert len(data) == 4097
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("big.csv", data, "text/csv")})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert ImportJob.objects.count() == jobs_before and db_snapshot() == seeded
    # A body that cannot hold an acceptable file is refused on its Content-Length alone.
    big = b"x" * (4096 + 70 * 1024)
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("huge.csv", big, "text/csv")})
    assert response.status_code == 413


def test_it_accepts_a_file_exactly_at_the_limit(settings, reviewer_client):
    settings.CSV_MAX_UPLOAD_BYTES = len(GOOD)
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("ok.csv", GOOD, "text/csv"), "dry_run": "1"})
    assert response.status_code == 202


def test_it_refuses_one_row_over_the_row_limit(settings, reviewer_client, seeded):
    settings.CSV_MAX_ROWS = 5
    ok = reviewer_client.post(URL, {"file": SimpleUploadedFile("ok.csv", valid_file(5), "text/csv"), "dry_run": "1"})
    assert ok.status_code == 202
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("rows.csv", valid_file(6), "text/csv")})
    assert response.status_code == 400
    errors = response.json()["error"]["job"]["errors"]
    assert errors == [
        {"row": 7, "column": None, "code": "too_many_rows", "message": "The file has more than 5 data rows; split it."}
    ]
    assert db_snapshot() == seeded


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("../../x.csv", "x.csv"),
        ("..\\..\\windows\\x.csv", "x.csv"),
        ("a\x00b.csv", "a_b.csv"),
        ("y" * 300 + ".csv", "y" * 116 + ".csv"),
    ],
)
def test_it_neutralises_hostile_filenames(name, stored, upload):
    job = upload(GOOD, name=name)
    assert job.status == ImportJob.Status.PREVIEWED
    assert job.filename == stored

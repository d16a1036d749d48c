"""Hostile and broken JUnit uploads through POST /api/v1/imports/junit (QUALITY.md "CI results"): each is a coded
error (with file and line where there is one) within a second and in bounded memory, nothing read from disk or
network, nothing stored, one audit event; no 5xx."""

from __future__ import annotations

import gzip
import io
import time
import tracemalloc
import zipfile
from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from imports import junit
from imports.models import ImportJob
from tests.imports.conftest import db_snapshot
from tests.imports.junit_helpers import fixture_bytes

pytestmark = pytest.mark.django_db

URL = "/api/v1/imports/junit"

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuite name="s"><testcase classname="c" name="&secret;"/></testsuite>"""
XXE_NETWORK = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite SYSTEM "http://127.0.0.1:9/evil.dtd">
<testsuite name="s"><testcase classname="c" name="a"/></testsuite>"""
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10 if n > 1 else "&lol;" * 10}">'.encode()
        for n in range(1, 10)
    )
    + b']><testsuite name="s"><testcase classname="c" name="&lol9;"/></testsuite>'
)
DTD_ONLY = b'<?xml version="1.0"?><!DOCTYPE testsuite><testsuite name="s"><testcase name="a"/></testsuite>'
UNDECLARED_ENTITY = b'<testsuite name="s"><testcase classname="c" name="&nope;"/></testsuite>'


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


REJECTED = {
    "xxe file": (XXE, "xml_dtd_forbidden", 3),
    "xxe network dtd": (XXE_NETWORK, "xml_dtd_forbidden", 3),
    "billion laughs": (LAUGHS, "xml_dtd_forbidden", 1),
    "internal dtd": (DTD_ONLY, "xml_dtd_forbidden", 1),
    "undeclared entity": (UNDECLARED_ENTITY, "xml_entity_forbidden", 1),
    "truncated": (fixture_bytes("gradle.xml")[:700], "xml_truncated", 8),
    "not xml": (b"PASS 12 FAIL 3\n", "not_xml", 1),
    "empty file": (b"", "not_xml", None),
    "png renamed": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not_xml", 1),
    "html": (b"<html><body>502 Bad Gateway</body></html>", "not_junit", 1),
    "empty report": (b'<?xml version="1.0"?><testsuites></testsuites>', "report_empty", None),
    "testcase without name": (
        b'<testsuite name="s">\n<testcase classname="c"/>\n</testsuite>',
        "testcase_name_missing",
        2,
    ),
    "zip traversal": (_zip({"../../etc/cron.d/x.xml": fixture_bytes("gradle.xml")}), "zip_path_traversal", None),
    "zip absolute": (_zip({"/tmp/x.xml": fixture_bytes("gradle.xml")}), "zip_path_traversal", None),
    "zip windows drive": (_zip({"C:\\x.xml": fixture_bytes("gradle.xml")}), "zip_path_traversal", None),
    "corrupt gzip": (gzip.compress(fixture_bytes("gradle.xml"))[:60], "archive_corrupt", None),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_it_refuses_with_a_coded_error(reviewer_client, reviewer, name):
    data, code, line = REJECTED[name]
    before = db_snapshot()
    audits = AuditEvent.objects.filter(action="import.junit", outcome="failure").count()
    response = reviewer_client.post(
        URL, {"file": SimpleUploadedFile("report.xml", data), "rc": "RC-1", "product": "Web"}
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["code"] == code
    job = body["error"]["job"]
    assert job["status"] == "invalid" and job["errors"][0]["row"] == line
    assert db_snapshot() == before
    assert AuditEvent.objects.filter(action="import.junit", outcome="failure").count() == audits + 1
    assert ImportJob.objects.get(pk=job["id"]).chunks.count() == 0  # the upload is not kept


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_it_refuses_within_a_second_in_bounded_memory(name):
    data, code, _line = REJECTED[name]
    upload = junit.Upload(product="P", rc="R", owner="o", category="c", uploaded_at=datetime.now(UTC))
    tracemalloc.start()
    started = time.monotonic()
    try:
        report = junit.validate(
            [("report.xml", lambda: io.BytesIO(data))],
            upload=upload,
            expanded_limit=200 * 1024 * 1024,
            max_files=10,
            max_testcases=1000,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 1.0
    assert peak < 16 * 1024 * 1024
    assert report.errors[0]["code"] == code


def test_it_reads_nothing_from_disk_for_an_external_entity(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    report = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY s SYSTEM "file://{secret}">]>'
        '<testsuite name="s"><testcase classname="c" name="&s;"/></testsuite>'
    ).encode()
    upload = junit.Upload(product="P", rc="R", owner="o", category="c", uploaded_at=datetime.now(UTC))
    with pytest.raises(junit.JunitFileError) as refused:
        list(junit.testcases("r.xml", io.BytesIO(report), upload=upload))
    assert refused.value.code == "xml_dtd_forbidden"
    assert "TOP-SECRET" not in str(refused.value.message)


def test_it_stops_a_gzip_bomb_at_the_expansion_limit(reviewer_client, settings):
    settings.JUNIT_MAX_EXPANDED_BYTES = 1024 * 1024
    bomb = gzip.compress(b'<testsuite name="s">' + b" " * (50 * 1024 * 1024) + b"</testsuite>")
    started = time.monotonic()
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("r.xml.gz", bomb), "rc": "R", "product": "P"})
    assert time.monotonic() - started < 1.0
    assert response.status_code == 400 and response.json()["error"]["code"] == "expanded_too_large"


def test_it_answers_413_over_the_size_limit_before_parsing(reviewer_client, settings):
    settings.JUNIT_MAX_UPLOAD_BYTES = 1000
    data = fixture_bytes("surefire-3.xml")
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("r.xml", data), "rc": "R", "product": "P"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    assert ImportJob.objects.count() == 0


def test_it_requires_the_target_fields(reviewer_client):
    response = reviewer_client.post(URL, {"file": SimpleUploadedFile("r.xml", fixture_bytes("gradle.xml"))})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"rc", "product"}
    response = reviewer_client.post(URL, {"rc": "R", "product": "P"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "file_missing"


def _big_report(count: int) -> bytes:
    head = b'<?xml version="1.0"?><testsuites><testsuite name="pytest" timestamp="2026-11-30T10:00:00+00:00">'
    body = b"".join(
        b'<testcase classname="tests.test_big.TestBig" name="test_%d" time="0.001"/>' % n
        if n % 10
        else b'<testcase classname="tests.test_big.TestBig" name="test_%d" time="0.002">'
        b'<failure message="AssertionError: value %d != 0">long text</failure></testcase>' % (n, n)
        for n in range(count)
    )
    return head + body + b"</testsuite></testsuites>"


def _peak_bytes(data: bytes) -> tuple[int, int]:
    upload = junit.Upload(product="P", rc="R", owner="o", category="c", uploaded_at=datetime.now(UTC))
    tracemalloc.start()
    try:
        report = junit.validate(
            [("big.xml", lambda: io.BytesIO(data))],
            upload=upload,
            expanded_limit=1 << 30,
            max_files=1,
            max_testcases=1_000_000,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return report.total, peak


def test_it_streams_a_50k_testcase_report_in_flat_memory():
    """The parser side, under tracemalloc (`make bench` measures the whole import's memory at the limits)."""
    small, large = _big_report(5_000), _big_report(50_000)
    total_small, peak_small = _peak_bytes(small)
    total_large, peak_large = _peak_bytes(large)
    assert (total_small, total_large) == (5_000, 50_000)
    # Ten times the file, not ten times the memory (the Python side; the input bytes themselves are not traced).
    assert peak_large < 2 * peak_small + 512 * 1024, (peak_small, peak_large)


def test_it_refuses_more_testcases_than_the_limit(reviewer_client, settings):
    settings.JUNIT_MAX_TESTCASES = 50
    response = reviewer_client.post(
        URL, {"file": SimpleUploadedFile("r.xml", _big_report(51)), "rc": "R", "product": "P"}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_testcases"

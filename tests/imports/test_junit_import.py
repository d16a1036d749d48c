"""JUnit / xUnit import: real reports (pytest in a subprocess on every run; committed outputs of node, jest,
Playwright and Robot Framework), published shapes (Surefire, Gradle, Go), mapping, idempotence, RC rules."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from imports.models import ImportJob
from imports.services import junit_import_create
from releases.models import ReleaseCandidate, TestCase, TestRun, TestSuite
from report_platform.errors import Conflict
from tests.imports.conftest import db_snapshot
from tests.imports.junit_helpers import fixture_bytes, pytest_report

pytestmark = pytest.mark.django_db


def _import(user, data: bytes | list[tuple[str, bytes]], *, rc="2026.12-rc1", product="Web", **fields) -> ImportJob:
    files = data if isinstance(data, list) else [("report.xml", data)]
    uploads = [SimpleUploadedFile(name, content) for name, content in files]
    return junit_import_create(user=user, uploads=uploads, rc=rc, product=product, **fields)


def _runs() -> dict[str, TestRun]:
    return {run.case.title: run for run in TestRun.objects.select_related("case")}


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_it_imports_a_real_pytest_report(reviewer, tmp_path, family):
    job = _import(reviewer, pytest_report(tmp_path, family=family))
    assert job.status == ImportJob.Status.SUCCEEDED, job.failure_message
    assert job.kind == "junit" and job.total == 9 and job.processed == 9
    runs = _runs()
    assert {title: run.status for title, run in runs.items()} == {
        "test_adds": "pass",
        "test_total_is_wrong": "fail",
        "test_needs_database": "fail",
        "test_coupon": "pending",
        "test_rounding": "pending",
        "test_ships[DE]": "pass",
        "test_ships[United States]": "pass",
        "test_empty": "pass",
        "test_lookup": "fail",
    }
    assert runs["test_total_is_wrong"].failure_signature == "AssertionError: total of order <n> is wrong"
    assert "assert 0.30000000000000004 == 0.3" in runs["test_total_is_wrong"].failure_message
    assert runs["test_needs_database"].failure_signature == "RuntimeError: database at <n> refused connection <n>"
    assert runs["test_lookup"].failure_signature == "KeyError: <str>"
    assert runs["test_coupon"].notes == "Skipped: coupon service not deployed"
    assert runs["test_rounding"].notes == "Skipped: known rounding bug"
    assert all(run.duration_ms is not None for run in runs.values())
    assert all(run.case_key == run.case.key for run in runs.values())
    # pytest names its one testsuite "pytest": the suite is the module (classname up to its first dot).
    assert list(TestSuite.objects.values_list("product", "name")) == [("Web", "test_shop")]
    case = TestCase.objects.get(title="test_empty")
    assert case.key == "test_shop.TestCart.test_empty"
    assert (case.owner, case.category) == ("ci", "automated")  # JUNIT_CASE_DEFAULTS
    assert ReleaseCandidate.objects.get(name="2026.12-rc1").product == "Web"
    assert AuditEvent.objects.filter(action="import.junit", resource=f"import:{job.pk}", outcome="success").count() == 1


EXPECTED = {
    "node-test-runner.xml": {"pass": 2, "fail": 2, "pending": 2, "flaky": 0},
    "jest-junit.xml": {"pass": 2, "fail": 2, "pending": 1, "flaky": 0},
    "playwright.xml": {"pass": 2, "fail": 1, "pending": 1, "flaky": 0},
    "robot-xunit.xml": {"pass": 1, "fail": 1, "pending": 2, "flaky": 0},
    "surefire-3.xml": {"pass": 2, "fail": 2, "pending": 1, "flaky": 1},
    "gradle.xml": {"pass": 2, "fail": 1, "pending": 1, "flaky": 0},
    "go-junit-report.xml": {"pass": 2, "fail": 1, "pending": 1, "flaky": 0},
    "gotestsum.xml": {"pass": 1, "fail": 1, "pending": 1, "flaky": 0},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_it_imports_each_format(reviewer, name):
    job = _import(reviewer, fixture_bytes(name))
    assert job.status == ImportJob.Status.SUCCEEDED, (job.errors, job.failure_message)
    runs = list(TestRun.objects.all())
    counts = {status: sum(1 for run in runs if run.status == status) for status in ("pass", "fail", "pending")}
    counts["flaky"] = sum(1 for run in runs if run.flaky)
    assert counts == EXPECTED[name]
    assert all(run.failure_signature for run in runs if run.status == "fail")
    assert not any(run.failure_signature for run in runs if run.status != "fail")


def test_it_maps_surefire_reruns_and_flakes(reviewer):
    _import(reviewer, fixture_bytes("surefire-3.xml"))
    runs = {run.case.title: run for run in TestRun.objects.select_related("case")}
    assert runs["retriesCheckout"].status == "pass" and runs["retriesCheckout"].flaky
    assert "Timed out after 500 ms" in runs["retriesCheckout"].failure_message
    # failure + rerunFailure: failed on every rerun -> fail
    assert runs["computesTotal"].status == "fail"
    assert runs["computesTotal"].failure_signature.startswith("org.opentest4j.AssertionFailedError: expected:")
    assert runs["connectsToPayment"].failure_signature == "java.net.ConnectException: Connection refused: localhost/<n>"


def test_it_takes_executed_at_from_the_testsuite_timestamp(reviewer):
    _import(reviewer, fixture_bytes("gradle.xml"))
    run = TestRun.objects.first()
    assert run.executed_at.isoformat() == "2026-11-30T09:15:02+00:00"


def test_it_uses_the_upload_time_without_a_timestamp(reviewer):
    job = _import(reviewer, fixture_bytes("node-test-runner.xml"))
    assert {run.executed_at.isoformat() for run in TestRun.objects.all()} == {job.options["uploaded_at"]}


def test_it_changes_nothing_when_the_same_report_is_uploaded_again(reviewer, tmp_path):
    data = pytest_report(tmp_path)
    first = _import(reviewer, data)
    before = db_snapshot()
    again = _import(reviewer, data)
    assert again.pk == first.pk
    assert db_snapshot() == before
    assert ImportJob.objects.count() == 1


def test_it_keeps_existing_cases_as_they_are(reviewer, tmp_path):
    data = pytest_report(tmp_path)
    _import(reviewer, data)
    TestCase.objects.filter(title="test_adds").update(owner="alice", priority=1)
    job = _import(reviewer, data, rc="2026.12-rc2")
    assert job.status == ImportJob.Status.SUCCEEDED
    assert job.result["cases_unchanged"] == 9 and job.result["cases_updated"] == 0
    case = TestCase.objects.get(title="test_adds")
    assert (case.owner, case.priority) == ("alice", 1)
    assert TestRun.objects.count() == 18


def test_it_uses_the_uploads_owner_and_category(reviewer):
    _import(reviewer, fixture_bytes("gradle.xml"), owner="team-orders", category="unit")
    assert set(TestCase.objects.values_list("owner", "category")) == {("team-orders", "unit")}


def test_it_refuses_an_rc_of_another_product(reviewer):
    _import(reviewer, fixture_bytes("gradle.xml"), product="Web")
    before = db_snapshot()
    with pytest.raises(Conflict) as refused:
        _import(reviewer, fixture_bytes("gotestsum.xml"), product="Mobile")
    assert refused.value.code == "rc_product_mismatch"
    assert db_snapshot() == before


def test_it_imports_gzip_several_files_and_a_zip(reviewer):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("reports/TEST-gradle.xml", fixture_bytes("gradle.xml"))
        archive.writestr("reports/go.xml.gz", gzip.compress(fixture_bytes("go-junit-report.xml")))
        archive.writestr("reports/readme.txt", b"not a report")
    files = [
        ("surefire.xml.gz", gzip.compress(fixture_bytes("surefire-3.xml"))),
        ("reports.zip", buffer.getvalue()),
        ("robot.xml", fixture_bytes("robot-xunit.xml")),
    ]
    job = _import(reviewer, files)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert job.total == 5 + 4 + 4 + 4
    assert TestRun.objects.count() == 17
    assert job.filename == "surefire.xml.gz (+2 more)"


def test_it_normalises_control_characters_and_huge_names(reviewer):
    long_name = "test_" + "x" * 10_000
    report = (
        '<testsuite name="S"><testcase classname="c" name="a&#9;b\u200bc\u202e"/>'
        f'<testcase classname="c" name="{long_name}"/><testcase classname="c" name="{long_name}y"/></testsuite>'
    ).encode()
    job = _import(reviewer, report)
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    titles = sorted(TestCase.objects.values_list("title", flat=True), key=len)
    assert titles[0] == "a bc"
    assert all(len(title) <= 300 for title in titles)
    keys = list(TestCase.objects.values_list("key", flat=True))
    assert len(set(keys)) == 3 and all(len(key) <= 64 for key in keys)


def test_it_processes_a_large_report_on_the_workers(reviewer, settings, monkeypatch):
    from imports import services

    queued = []
    monkeypatch.setattr(services, "import_job_enqueue", queued.append)
    settings.JUNIT_INLINE_MAX_TESTCASES = 2
    job = _import(reviewer, fixture_bytes("gradle.xml"))
    assert job.status == ImportJob.Status.QUEUED and queued == [job.pk]
    assert TestRun.objects.count() == 0
    services.import_job_process(job_id=str(job.pk), worker="test-worker")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and TestRun.objects.count() == 4


def test_it_rolls_back_everything_when_a_batch_fails(reviewer, settings, monkeypatch):
    from releases import bulk

    settings.CSV_IMPORT_BATCH_ROWS = 2
    settings.CSV_IMPORT_MAX_ATTEMPTS = 1
    before = db_snapshot()
    real = bulk.rows_write
    calls = {"n": 0}

    def failing(rows, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected")
        return real(rows, **kwargs)

    monkeypatch.setattr(bulk, "rows_write", failing)
    job = _import(reviewer, fixture_bytes("gradle.xml"), rc="RC-fail")
    assert calls["n"] == 2  # the first batch was written (RC, suite, cases, runs), then the second failed
    assert job.status == ImportJob.Status.FAILED and job.failure_code == "import_error"
    # A job that says nothing was written has written nothing: not even the RC it would have created.
    assert db_snapshot() == before
    assert not ReleaseCandidate.objects.filter(name="RC-fail").exists()
    assert (TestSuite.objects.count(), TestCase.objects.count(), TestRun.objects.count()) == (0, 0, 0)


def test_it_leaves_no_rc_behind_when_cancelled_mid_file(reviewer, settings, monkeypatch):
    from imports import services
    from releases import bulk

    settings.CSV_IMPORT_BATCH_ROWS = 2
    settings.JUNIT_INLINE_MAX_TESTCASES = 2
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: None)
    before = db_snapshot()
    real = bulk.rows_write
    calls = {"n": 0}

    def cancelling(rows, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the first batch committed the RC, a suite, cases and runs
            assert ReleaseCandidate.objects.filter(name="RC-cancel").exists()
            services.import_job_cancel(user=reviewer, job_id=str(job.pk))
        return real(rows, **kwargs)

    monkeypatch.setattr(bulk, "rows_write", cancelling)
    job = _import(reviewer, fixture_bytes("gradle.xml"), rc="RC-cancel")
    assert job.status == ImportJob.Status.QUEUED
    services.import_job_process(job_id=str(job.pk), worker="test-worker")  # fenced out at its second batch
    services.import_job_process(job_id=str(job.pk), worker="rollback-worker")  # finishes the rollback
    job.refresh_from_db()
    assert calls["n"] == 2 and job.status == ImportJob.Status.CANCELLED
    assert db_snapshot() == before


def test_it_keeps_an_rc_it_created_that_another_import_wrote_to(reviewer, make_user, settings, monkeypatch):
    """Two CI jobs upload into the same new RC; the one that created it fails: the other's runs keep their RC."""
    from imports import services

    settings.CSV_IMPORT_BATCH_ROWS = 2
    settings.CSV_IMPORT_MAX_ATTEMPTS = 1
    settings.JUNIT_INLINE_MAX_TESTCASES = 2
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: None)
    real = services._batch_write
    calls = {"first": 0}

    def first_fails_after_another_import(batch, *, job, **kwargs):
        if job.pk != first.pk:
            return real(batch, job=job, **kwargs)
        calls["first"] += 1
        if calls["first"] == 2:  # the first batch committed the RC; another upload now writes into it
            other = _import(make_user("reviewer"), fixture_bytes("go-junit-report.xml"), rc="RC-shared")
            services.import_job_process(job_id=str(other.pk), worker="other-worker")
            raise RuntimeError("injected")
        return real(batch, job=job, **kwargs)

    first = _import(reviewer, fixture_bytes("gradle.xml"), rc="RC-shared")
    monkeypatch.setattr(services, "_batch_write", first_fails_after_another_import)
    services.import_job_process(job_id=str(first.pk), worker="test-worker")
    first.refresh_from_db()
    assert first.status == ImportJob.Status.FAILED
    other = ImportJob.objects.exclude(pk=first.pk).get()
    assert other.status == ImportJob.Status.SUCCEEDED and other.result["release_candidates_created"] == 0
    rc = ReleaseCandidate.objects.get(name="RC-shared")
    assert set(TestRun.objects.values_list("release_candidate_id", flat=True)) == {rc.pk}
    assert TestRun.objects.count() == TestCase.objects.count() == 4  # the other report's; the failed one's are gone
    suites = set(TestSuite.objects.values_list("pk", flat=True))
    assert suites and set(TestCase.objects.values_list("suite_id", flat=True)) <= suites


def test_it_fails_when_the_rc_was_given_another_product_while_queued(reviewer, settings, monkeypatch):
    from imports import services
    from releases.services import release_candidate_create

    settings.JUNIT_INLINE_MAX_TESTCASES = 2
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: None)
    job = _import(reviewer, fixture_bytes("gradle.xml"), rc="RC-late", product="Web")
    assert job.status == ImportJob.Status.QUEUED and not ReleaseCandidate.objects.filter(name="RC-late").exists()
    release_candidate_create(name="RC-late", product="Mobile", actor=reviewer)
    before = db_snapshot()
    services.import_job_process(job_id=str(job.pk), worker="test-worker")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and job.failure_code == "rc_product_mismatch"
    assert db_snapshot() == before


def test_it_changes_nothing_when_another_user_uploads_the_same_report(reviewer, make_user, client):
    # No timestamp in this report: a second import would record new runs at its own upload time.
    data = fixture_bytes("node-test-runner.xml")
    first = _import(reviewer, data)
    assert first.status == ImportJob.Status.SUCCEEDED
    before = db_snapshot()
    other = make_user("reviewer")
    again = _import(other, data)
    assert again.pk == first.pk and again.status == ImportJob.Status.SUCCEEDED
    assert db_snapshot() == before
    assert ImportJob.objects.count() == 1
    assert AuditEvent.objects.filter(action="import.junit").count() == 1
    # The other reviewer can follow the earlier job (page and progress), but not act on it.
    client.force_login(other)
    assert client.get(reverse("api:import_get", args=[first.pk])).json()["id"] == str(first.pk)
    assert client.get(reverse("imports:import_detail", args=[first.pk])).status_code == 200
    assert client.post(reverse("api:import_cancel", args=[first.pk])).status_code == 404
    # The same report for another RC is another import.
    assert _import(other, data, rc="2026.12-rc2").pk != first.pk

"""Release data for report tests, made through the releases services (so the metric summaries are true)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

HTML_SUITE = "Checkout <b>& Pay</b> Ünïcödé"
HTML_TITLE = "<script>alert('x')</script> Zahlung prüfen Ωμέγα"


@dataclass
class ReportData:
    suite: object
    other_suite: object
    rc1: object
    rc2: object
    rc3: object
    empty_rc: object
    cases: dict


@pytest.fixture
def report_data(db, reviewer) -> ReportData:
    """Two suites, three RCs with runs (one more without any), failures with Mantis ids, a flaky case, a case
    titled with HTML and Unicode, a case never run in the newest RC."""
    from releases.models import ReleaseCandidate, TestCase, TestRun, TestSuite
    from releases.services import summaries_rebuild

    # Written directly (fast), then the metric summaries are rebuilt from the runs exactly as the service does.
    suite = TestSuite.objects.create(name=HTML_SUITE, product="Shop")
    other = TestSuite.objects.create(name="Search", product="Shop")
    rc1, rc2, rc3, empty = (ReleaseCandidate.objects.create(name=f"RC-{n}", sequence=n * 10) for n in range(1, 5))
    specs = [
        # key, suite, title, category, owner, priority, statuses in RC-1, RC-2, RC-3 (None = no run)
        ("PAY-001", suite, HTML_TITLE, "payments", "zoë", 1, ("pass", "pass", "fail")),
        ("PAY-002", suite, "Refund a card payment", "payments", "zoë", 2, ("fail", "fail", "fail")),
        ("PAY-003", suite, "Pay with a voucher", "vouchers", "omar", 3, ("fail", "fail", "pass")),
        ("PAY-004", suite, "Flaky 3-D Secure redirect", "payments", "omar", 2, ("pass", "fail", "pass")),
        ("PAY-005", suite, "Currency rounding", "vouchers", "zoë", 3, ("pass", "pass", "pending")),
        ("PAY-006", suite, "Invoice PDF", "invoices", "lee", 4, ("pass", "pass", None)),
        ("SRCH-001", other, "Search by name", "search", "lee", 2, ("pass", "pass", "pass")),
        ("SRCH-002", other, "Search with typos", "search", "lee", 3, ("pass", "pass", "fail")),
    ]
    cases = {}
    runs = []
    for key, case_suite, title, category, owner, priority, statuses in specs:
        case = TestCase.objects.create(
            suite=case_suite, key=key, title=title, category=category, owner=owner, priority=priority
        )
        cases[key] = case
        for rc, status in zip((rc1, rc2, rc3), statuses, strict=True):
            if status is not None:
                runs.append(
                    TestRun(
                        case=case,
                        release_candidate=rc,
                        status=status,
                        mantis_ids=[4000 + len(cases)] if status == "fail" else [],
                        suite=case_suite,
                        owner=owner,
                        category=category,
                        case_key=key,
                        executed_by=reviewer,
                    )
                )
    TestRun.objects.bulk_create(runs)
    summaries_rebuild()
    return ReportData(suite=suite, other_suite=other, rc1=rc1, rc2=rc2, rc3=rc3, empty_rc=empty, cases=cases)


@pytest.fixture
def enqueued(monkeypatch) -> list:
    """Capture enqueued generation jobs instead of publishing them (tests run the service directly)."""
    from reports.tasks import report_generate_task

    calls: list = []
    monkeypatch.setattr(report_generate_task, "apply_async", lambda args, **options: calls.append(args[0]))
    return calls


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def generate(enqueued, media_root):
    """Request and generate a report synchronously: generate(actor, rc, suite=None, baseline=None) -> Report."""
    from reports import services

    def run(actor, release_candidate, suite=None, baseline=None):
        report = services.report_request(
            actor=actor,
            release_candidate=str(release_candidate.pk),
            suite=str(suite.pk) if suite is not None else None,
            baseline=str(baseline.pk) if baseline is not None else None,
        )
        services.report_generate(report_id=str(report.pk))
        report.refresh_from_db()
        return report

    return run

"""Generating a report (the service the Celery task calls): grounded figures, AI narrative or fallback, the files,
and what happens when deliveries are killed, duplicated or poisoned."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import FileSystemStorage, default_storage
from docx import Document
from pypdf import PdfReader

from ai_assist.models import AiUsageLog
from ai_assist.quotas import AiQuotaExceeded
from ai_assist.services import AiUnavailable
from audit.models import AuditEvent
from releases import selectors as release_selectors
from reports import services
from reports.models import Report
from tests.reports.conftest import HTML_SUITE, HTML_TITLE

pytestmark = pytest.mark.django_db


def _pdf_text(report: Report) -> str:
    with default_storage.open(report.pdf_file.name, "rb") as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    # Table cells wrap: compare with whitespace collapsed.
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def _docx_text(report: Report) -> str:
    with default_storage.open(report.docx_file.name, "rb") as handle:
        document = Document(io.BytesIO(handle.read()))
    parts = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.extend(cell.text for cell in row.cells)
    return "\n".join(parts)


def test_it_reports_exactly_the_figures_of_the_metrics_selectors(report_data, reviewer, generate):
    rc, suite = report_data.rc3, report_data.suite
    report = generate(reviewer, rc, suite=suite, baseline=report_data.rc1)

    assert report.status == "ready", report.error_message
    quality = release_selectors.quality_summary(release_candidate=rc, suite=suite)
    delta = release_selectors.rc_delta(release_candidate=rc, baseline=report_data.rc1, suite=suite)
    gate = release_selectors.release_gate(release_candidate=rc, suite=suite)
    flaky = release_selectors.flaky_cases(release_candidate=rc, suite=suite)
    figures = report.figures
    assert figures["totals"] == quality["totals"]
    assert figures["by_category"] == quality["by_category"]
    assert figures["by_owner"] == quality["by_owner"]
    assert figures["gate"]["verdict"] == gate["verdict"] and figures["gate"]["reasons"] == gate["reasons"]
    assert figures["delta"]["baseline"] == "RC-1"
    for name in ("new_failures", "fixed", "still_failing", "newly_not_run"):
        assert [row["key"] for row in figures["delta"][name]] == [item["key"] for item in delta[name]]
    assert [row["key"] for row in figures["flaky"]] == [item["key"] for item in flaky]
    assert figures["mantis_open"] == [4001, 4002]
    trend = release_selectors.pass_rate_trend(suite=suite, limit=10)
    assert figures["trend"] == [
        {"name": p["release_candidate"], "pass_rate": p["pass_rate"], "total": p["total"]}
        for p in trend
        if p["sequence"] <= rc.sequence
    ]


def test_it_prints_those_figures_in_the_pdf_and_the_docx(report_data, reviewer, generate):
    report = generate(reviewer, report_data.rc3)
    totals = report.figures["totals"]
    assert totals == release_selectors.quality_summary(release_candidate=report_data.rc3)["totals"]
    pdf, docx = _pdf_text(report), _docx_text(report)
    for text in (pdf, docx):
        assert f"{totals['pass_rate']:.1f} %" in text
        assert "Release gate: NO-GO" in text
        assert HTML_TITLE in text  # HTML in names is printed as text
        assert HTML_SUITE in text
        assert "Appendix: all cases" in text
        assert "PAY-006" in text and "No run" in text  # a case without a run in this RC is listed as such
        assert "4001, 4002, 4008" in text  # open Mantis issues
    assert "Executive summary" in pdf and "1. Executive summary" in docx
    summary_page = PdfReader(default_storage.open(report.pdf_file.name, "rb")).pages[1].extract_text()
    for value in (totals["total"], totals["pass"], totals["fail"], totals["pending"]):
        assert str(value) in summary_page


def test_it_writes_the_narrative_with_the_ai_and_states_model_and_cost(report_data, reviewer, generate):
    report = generate(reviewer, report_data.rc3)

    assert report.summary_source == "ai"
    log = AiUsageLog.objects.get(task_id=f"report:{report.pk}")
    assert log.template_id == "report_summary" and log.outcome == "success"
    assert report.ai_model == log.model and float(report.ai_cost) == pytest.approx(log.cost_usd)
    assert report.ai_usage_log_id == str(log.pk)
    assert report.narrative["recommendation"].startswith("Do not release yet")
    assert f"Narrative written by the AI model {log.model}" in _pdf_text(report)


@pytest.mark.parametrize(
    ("error", "note"),
    [(AiQuotaExceeded(), "AI quota exceeded"), (AiUnavailable(), "AI unavailable")],
)
def test_it_still_produces_the_report_without_the_ai(report_data, reviewer, generate, monkeypatch, error, note):
    def refuse(**kwargs):
        raise error

    monkeypatch.setattr("ai_assist.services.ai_stream_text", refuse)
    report = generate(reviewer, report_data.rc3)

    assert report.status == "ready"
    assert report.summary_source == "fallback" and report.summary_note == note
    assert report.ai_model == "" and report.ai_cost == 0
    assert "RC-3 (All suites): 7 cases with a latest run: 3 pass, 3 fail, 1 pending" in report.summary
    for text in (_pdf_text(report), _docx_text(report)):
        assert f"AI narrative unavailable ({note})" in text
        assert "3 pass, 3 fail, 1 pending" in text


class _FakeStream:
    provider, model, usage_log_id = "fake", "fake-model", ""

    def __init__(self, text: str) -> None:
        self.text = text
        self.result = None

    def __iter__(self):
        yield self.text


def test_it_discards_an_ai_narrative_that_invents_numbers(report_data, reviewer, generate, monkeypatch):
    invented = "Summary\nThe pass rate is 97.5% and 12 cases fail.\n\nRisks\n- None\n\nRecommendation\nShip it."
    monkeypatch.setattr("ai_assist.services.ai_stream_text", lambda **kwargs: _FakeStream(invented))
    report = generate(reviewer, report_data.rc3)

    assert report.summary_source == "fallback"
    assert "numbers not in the figures (12)" in report.summary_note
    assert "97.5" not in report.summary and "Ship it." not in report.summary


def test_it_accepts_an_ai_narrative_that_only_uses_the_figures(report_data, reviewer, generate, monkeypatch):
    grounded = (
        "**Summary**\nRC-3 passes 3 of 7 cases (42.9%).\n\n## Risks\n1. PAY-001 fails.\n2. 3 failures.\n\n"
        "Recommendation:\nHold the release."
    )
    monkeypatch.setattr("ai_assist.services.ai_stream_text", lambda **kwargs: _FakeStream(grounded))
    report = generate(reviewer, report_data.rc3)

    assert report.summary_source == "ai", report.summary_note
    assert report.narrative == {
        "summary": "RC-3 passes 3 of 7 cases (42.9%).",
        "risks": ["PAY-001 fails.", "3 failures."],
        "recommendation": "Hold the release.",
        "sources": {"summary": "ai", "risks": "ai", "recommendation": "ai"},
    }


def test_it_is_idempotent_once_ready(report_data, reviewer, generate):
    report = generate(reviewer, report_data.rc3)
    files = (report.pdf_file.name, report.docx_file.name)

    assert services.report_generate(report_id=str(report.pk)) is None
    report.refresh_from_db()
    assert (report.pdf_file.name, report.docx_file.name) == files and report.attempts == 1
    assert AuditEvent.objects.filter(action="report.generate").count() == 1
    assert AiUsageLog.objects.filter(task_id=f"report:{report.pk}").count() == 1


def test_it_finishes_on_redelivery_after_a_worker_died_mid_publish(
    report_data, reviewer, enqueued, media_root, monkeypatch, client
):
    report = services.report_request(actor=reviewer, release_candidate="RC-3")
    original_save = FileSystemStorage.save

    def die_on_docx(storage, name, content, **kwargs):
        if name.endswith(".docx"):
            raise SystemExit("worker killed")  # a BaseException: nothing in the service may swallow it
        return original_save(storage, name, content, **kwargs)

    monkeypatch.setattr(FileSystemStorage, "save", die_on_docx)
    with pytest.raises(SystemExit):
        services.report_generate(report_id=str(report.pk))
    report.refresh_from_db()
    assert report.status == "running" and report.pdf_file.name == ""  # the half-published job serves nothing
    orphans = list((media_root / "reports" / str(report.pk)).rglob("*.pdf"))
    assert len(orphans) == 1
    client.force_login(reviewer)
    status = client.get(f"/api/v1/reports/{report.pk}").json()
    assert status["status"] == "running" and status["downloads"] is None
    response = client.get(f"/reports/{report.pk}/download/pdf/")
    assert response.status_code == 409 and b"report_not_ready" in response.content

    monkeypatch.setattr(FileSystemStorage, "save", original_save)
    services.report_generate(report_id=str(report.pk))  # the redelivery
    report.refresh_from_db()
    assert report.status == "ready" and report.attempts == 2
    assert default_storage.exists(report.pdf_file.name) and default_storage.exists(report.docx_file.name)
    remaining = sorted(str(path.relative_to(media_root)) for path in (media_root / "reports").rglob("*.*"))
    assert remaining == sorted([report.pdf_file.name, report.docx_file.name])
    assert not orphans[0].exists()
    assert AiUsageLog.objects.filter(task_id=f"report:{report.pk}").count() == 1  # the narrative was kept


def test_it_lets_only_the_newest_delivery_publish(report_data, reviewer, enqueued, media_root):
    report = services.report_request(actor=reviewer, release_candidate="RC-3")
    first = services._claim(str(report.pk))
    assert first is not None

    services.report_generate(report_id=str(report.pk))  # a duplicate delivery takes over and finishes
    with pytest.raises(services.LeaseLost):
        first.write(progress=50)
    report.refresh_from_db()
    assert report.status == "ready" and report.progress == 100
    assert len(list((media_root / "reports").rglob("*.pdf"))) == 1


def test_it_fails_a_poison_job_once_with_a_code(report_data, reviewer, enqueued, media_root, monkeypatch):
    def explode(content, out):
        raise ValueError("bad glyph table")

    monkeypatch.setattr(services, "render_docx", explode)
    report = services.report_request(actor=reviewer, release_candidate="RC-3")
    services.report_generate(report_id=str(report.pk))
    report.refresh_from_db()

    assert report.status == "failed" and report.error_code == "report_generation_failed"
    assert "ValueError" in report.error_message
    assert report.pdf_file.name == "" and list(media_root.rglob("*.*")) == []
    assert services.report_generate(report_id=str(report.pk)) is None  # redelivered: no loop, no change
    report.refresh_from_db()
    assert report.attempts == 1


def test_it_gives_up_after_the_maximum_attempts(report_data, reviewer, enqueued, media_root, settings):
    report = services.report_request(actor=reviewer, release_candidate="RC-3")
    Report.objects.filter(pk=report.pk).update(status="running", attempts=settings.REPORTS_MAX_ATTEMPTS)

    assert services.report_generate(report_id=str(report.pk)) is None
    report.refresh_from_db()
    assert report.status == "failed" and report.error_code == "report_generation_abandoned"


def test_it_requeues_stale_running_jobs(report_data, reviewer, enqueued, media_root):
    import time_machine

    report = services.report_request(actor=reviewer, release_candidate="RC-3")
    services._claim(str(report.pk))
    enqueued.clear()
    assert services.report_recover_stale() == 0
    with time_machine.travel("2099-01-01 00:00Z"):
        assert services.report_recover_stale() == 1
    assert enqueued == [str(report.pk)]


def test_it_ignores_unknown_and_malformed_job_ids(db):
    assert services.report_generate(report_id="not-an-id") is None
    assert services.report_generate(report_id="0123456789abcdef01234567") is None


def test_it_falls_back_when_the_ai_gateway_breaks_unexpectedly(report_data, reviewer, generate, monkeypatch):
    def broken(**kwargs):
        raise ConnectionError("redis for quotas is down")

    monkeypatch.setattr("ai_assist.services.ai_stream_text", broken)
    report = generate(reviewer, report_data.rc3)
    assert report.status == "ready" and report.summary_source == "fallback" and report.summary_note == "AI unavailable"


def test_it_counts_outcomes_and_times_each_format(report_data, reviewer, generate):
    from prometheus_client import REGISTRY

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "requested": sample("rp_reports_total", outcome="requested"),
        "ready": sample("rp_reports_total", outcome="ready"),
        "pdf": sample("rp_report_duration_seconds_count", format="pdf"),
        "docx": sample("rp_report_duration_seconds_count", format="docx"),
    }
    generate(reviewer, report_data.rc3)
    assert sample("rp_reports_total", outcome="requested") == before["requested"] + 1
    assert sample("rp_reports_total", outcome="ready") == before["ready"] + 1
    assert sample("rp_report_duration_seconds_count", format="pdf") == before["pdf"] + 1
    assert sample("rp_report_duration_seconds_count", format="docx") == before["docx"] + 1


def test_it_shows_reports_read_only_in_the_django_admin(client, admin_user, report_data, reviewer, generate):
    report = generate(reviewer, report_data.rc3)
    client.force_login(admin_user)
    listing = client.get("/admin/reports/report/")
    assert listing.status_code == 200 and b"RC-3" in listing.content
    assert client.get(f"/admin/reports/report/{report.pk}/change/").status_code == 200
    assert client.get("/admin/reports/report/add/").status_code == 403


def test_it_keeps_going_on_storage_that_cannot_list_folders(monkeypatch, caplog):
    """Cleaning up files of interrupted attempts needs `listdir`; storages without it skip the cleanup and say so."""
    from types import SimpleNamespace

    def unlisted(path):
        raise NotImplementedError("subclasses of Storage must provide a listdir() method")

    monkeypatch.setattr(default_storage, "listdir", unlisted)
    with caplog.at_level("INFO", logger="reports.services"):
        services._remove_other_attempts(SimpleNamespace(pk="0123456789abcdef01234567"), keep="attempt")
    assert "cannot list folders" in caplog.text

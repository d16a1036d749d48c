"""Reports a manager forwards as they are: the short and the full edition of exactly the RC's product, every count
from the same figures, a narrative that is never empty nor contradicts the gate, cells that wrap between words."""

from __future__ import annotations

import io
import re

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from docx import Document
from pypdf import PdfReader

from releases import services as release_services
from releases.models import ReleaseCandidate
from reports import services
from reports.content import cover_line, kpi_values
from reports.docx_renderer import render_docx
from reports.fonts import register_fonts
from reports.pdf_renderer import _wrapped, render_pdf
from tests.reports.samples import sample_content

pytestmark = pytest.mark.django_db


class _FakeStream:
    """What `ai_stream_text` returns, answering a fixed text (the AI provider's reply)."""

    provider, model, usage_log_id = "fake", "fake-model", ""

    def __init__(self, text: str) -> None:
        self.text = text
        self.result = None

    def __iter__(self):
        yield self.text


@pytest.fixture
def two_products(reviewer):
    """Shop (two suites, 6 cases, one never run, one new P1 failure) and App (3 cases), with RCs in turn:
    shop-1, app-1, shop-2, app-2."""
    make = release_services

    shop_suites = [
        make.suite_create(name="Checkout", product="Shop", actor=reviewer),
        make.suite_create(name="Search", product="Shop", actor=reviewer),
    ]
    app_suite = make.suite_create(name="Sync", product="App", actor=reviewer)
    rcs = {
        name: make.release_candidate_create(name=name, product=product, actor=reviewer)
        for name, product in (("shop-1", "Shop"), ("app-1", "App"), ("shop-2", "Shop"), ("app-2", "App"))
    }
    owners = ["bob@demo.local", "alice.wonderland@demo.local"]
    shop_cases = [
        make.case_create(
            suite=shop_suites[n % 2],
            key=f"SHOP-{n}",
            title=f"Shop case {n}",
            category=("cart", "query")[n % 2],
            owner=owners[n % 2],
            priority=1 if n == 0 else 3,
            actor=reviewer,
        )
        for n in range(6)
    ]
    app_cases = [
        make.case_create(
            suite=app_suite, key=f"APP-{n}", title=f"App case {n}", category="sync", owner="eve", actor=reviewer
        )
        for n in range(3)
    ]
    for case, before, now in zip(shop_cases, ["pass", "pass", "fail", "pass", "pass", "pass"],
                                 ["fail", "pass", "pass", "fail", "pending", None], strict=True):  # fmt: skip
        make.test_run_record(case=case, release_candidate=rcs["shop-1"], status=before, actor=reviewer)
        if now:
            make.test_run_record(case=case, release_candidate=rcs["shop-2"], status=now, actor=reviewer)
    for case in app_cases:
        make.test_run_record(case=case, release_candidate=rcs["app-1"], status="pass", actor=reviewer)
        make.test_run_record(case=case, release_candidate=rcs["app-2"], status="pass", actor=reviewer)
    return rcs


@pytest.fixture
def generate(enqueued, media_root):
    def run(actor, rc, *, edition: str, **options):
        report = services.report_request(actor=actor, release_candidate=rc.name, edition=edition, **options)
        services.report_generate(report_id=str(report.pk))
        report.refresh_from_db()
        assert report.status == "ready", report.error_message
        return report

    return run


def _pdf(report) -> PdfReader:
    with default_storage.open(report.pdf_file.name, "rb") as handle:
        return PdfReader(io.BytesIO(handle.read()))


def _flat(text: str) -> str:
    return " ".join(text.split())


def _docx_text(report) -> str:
    with default_storage.open(report.docx_file.name, "rb") as handle:
        document = Document(io.BytesIO(handle.read()))
    parts = [paragraph.text for paragraph in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def test_the_full_edition_counts_the_same_on_the_cover_the_summary_and_the_appendix(two_products, reviewer, generate):
    report = generate(reviewer, two_products["shop-2"], edition="full")
    totals = report.figures["totals"]
    assert (totals["in_scope"], totals["total"], totals["not_run"], totals["coverage"]) == (6, 5, 1, 83.3)
    reader = _pdf(report)
    pages = [page.extract_text() for page in reader.pages]
    cover, summary, everything = _flat(pages[0]), _flat(pages[1]), _flat("\n".join(pages))
    assert _flat(cover_line(totals)) in cover
    assert " ".join(kpi_values(totals)) in summary  # the summary table's row, in order
    appendix = everything.split("Appendix: all cases", 1)[1]
    assert f"{totals['in_scope']} cases with their latest status" in appendix
    assert sorted(set(re.findall(r"SHOP-\d", appendix))) == [f"SHOP-{n}" for n in range(6)]
    # Exactly the RC's product: no case, suite or RC of the other product anywhere.
    for other in ("APP-", "Sync", "app-1", "app-2"):
        assert other not in everything, other
    assert "Compared with shop-1" in everything or "baseline shop-1" in everything
    docx = _docx_text(report)
    assert cover_line(totals) in docx and "APP-" not in docx and "Appendix: all cases" in docx


def test_the_short_edition_is_a_cover_and_a_one_page_summary_with_every_headline_figure(
    two_products, reviewer, generate
):
    report = generate(reviewer, two_products["shop-2"], edition="short")
    totals, delta = report.figures["totals"], report.figures["delta"]
    reader = _pdf(report)
    assert len(reader.pages) == 2
    cover, summary = (_flat(page.extract_text()) for page in reader.pages)
    assert "Short edition" in cover and _flat(cover_line(totals)) in cover and "Release gate: NO-GO" in cover
    assert " ".join(kpi_values(totals)) in summary
    assert "Coverage" in summary and "83.3 %" in summary and "Pass rate" in summary
    counts = delta["counts"]
    assert f"Against the baseline shop-1: {counts['new_failures']} new failures, {counts['fixed']} fixed" in summary
    assert "New failures (2): SHOP-0, SHOP-3." in summary and "Fixed (1): SHOP-2." in summary
    assert "Top risks" in summary and "Recommendation" in summary and "Appendix" not in summary
    recommendation = summary.split("Recommendation", 1)[1].strip()
    assert recommendation.startswith(_flat(report.narrative["recommendation"])[:40])
    docx = _docx_text(report)
    assert "Short edition" in docx and "Appendix: all cases" not in docx and "New failures (2)" in docx


def test_a_report_refuses_a_baseline_or_suite_of_another_product(two_products, reviewer, enqueued):
    with pytest.raises(services.ValidationFailed) as baseline:
        services.report_request(actor=reviewer, release_candidate="shop-2", baseline="app-1")
    assert baseline.value.code == "report_baseline_other_product"
    sync = ReleaseCandidate.objects.get(name="app-1")  # any App object: take the App suite through a run
    suite_id = str(sync.runs.first().suite_id)
    with pytest.raises(services.ValidationFailed) as suite:
        services.report_request(actor=reviewer, release_candidate="shop-2", suite=suite_id)
    assert suite.value.code == "report_suite_other_product"
    with pytest.raises(services.ValidationFailed) as edition:
        services.report_request(actor=reviewer, release_candidate="shop-2", edition="poster")
    assert edition.value.code == "report_unknown_edition"


def test_an_ai_that_says_no_risks_for_a_no_go_rc_is_replaced_by_the_grounded_risks(
    two_products, reviewer, generate, monkeypatch
):
    answer = "Summary\nshop-2 has failures.\n\nRisks\n- No risks identified.\n\nRecommendation\nHold the release."
    monkeypatch.setattr("ai_assist.services.ai_stream_text", lambda **kwargs: _FakeStream(answer))
    report = generate(reviewer, two_products["shop-2"], edition="short")
    assert report.figures["gate"]["verdict"] == "NO-GO" and report.figures["gate"]["new_p1_failures"] == ["SHOP-0"]
    narrative = report.narrative
    assert narrative["sources"] == {"summary": "ai", "risks": "fallback", "recommendation": "ai"}
    reasons = report.figures["gate"]["reasons"]
    assert narrative["risks"][: len(reasons)] == reasons  # the plain risks start with the gate's reasons
    assert any("priority-1" in risk for risk in narrative["risks"])
    assert not any("No risks" in risk for risk in narrative["risks"])
    assert report.summary_source == "ai" and "risks" in report.summary_note
    pdf = _flat(" ".join(page.extract_text() for page in _pdf(report).pages))
    assert "AI-written sections: summary, recommendation; written from the figures without AI: risks" in pdf
    assert "No risks identified" not in pdf


def test_an_empty_ai_recommendation_falls_back_to_the_grounded_sentence(two_products, reviewer, generate, monkeypatch):
    answer = "Summary\nshop-2 is being tested.\n\nRisks\n- SHOP-0 fails.\n\nRecommendation\n"
    monkeypatch.setattr("ai_assist.services.ai_stream_text", lambda **kwargs: _FakeStream(answer))
    report = generate(reviewer, two_products["shop-2"], edition="full")
    assert report.narrative["sources"]["recommendation"] == "fallback"
    assert report.narrative["recommendation"].startswith("Do not release yet")
    assert report.narrative["risks"] == ["SHOP-0 fails."]
    pdf = _flat(" ".join(page.extract_text() for page in _pdf(report).pages))
    assert "Recommendation Do not release yet" in pdf
    assert "Recommendation Do not release yet" in _flat(_docx_text(report))


def test_an_ai_recommendation_to_release_a_no_go_rc_is_not_printed(two_products, reviewer, generate, monkeypatch):
    answer = "Summary\nAll good.\n\nRisks\n- SHOP-0 fails.\n\nRecommendation\nShip it: ready for release."
    monkeypatch.setattr("ai_assist.services.ai_stream_text", lambda **kwargs: _FakeStream(answer))
    report = generate(reviewer, two_products["shop-2"], edition="short")
    assert report.narrative["sources"]["recommendation"] == "fallback"
    assert "Ship it" not in _flat(" ".join(page.extract_text() for page in _pdf(report).pages))


def test_table_cells_wrap_between_words_or_after_at_and_dot_never_inside_a_word():
    regular, _bold = register_fonts()
    lines = _wrapped("alice.wonderland@demo.local", 40, regular, 8).split("<br/>")
    assert "".join(lines) == "alice.wonderland@demo.local"
    assert lines == ["alice.", "wonderland@", "demo.", "local"]  # each break after a . or @, none inside a word
    assert _wrapped("alice.wonderland@demo.local", 60, regular, 8).split("<br/>") == [
        "alice.",
        "wonderland@",
        "demo.local",
    ]
    assert _wrapped("Refund a card payment", 60, regular, 8).split("<br/>") == ["Refund a card", "payment"]
    assert _wrapped("short", 200, regular, 8) == "short"
    assert _wrapped("<b>x</b>", 200, regular, 8) == "&lt;b&gt;x&lt;/b&gt;"
    # The renderers accept owners that are e-mails in narrow columns (PDF: measured lines; DOCX: a zero-width
    # space after @ and . for Word to break at).
    content = sample_content(12)
    content.figures["delta"]["new_failures"][0]["owner"] = "alice.wonderland@demo.local"
    out = io.BytesIO()
    render_pdf(content, out)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(out.getvalue())).pages)
    assert "alice.wonderland@" in text.replace("\n", "") or "alice." in text
    assert "wonderl\nand" not in text and "demo.l\nocal" not in text
    docx_out = io.BytesIO()
    render_docx(content, docx_out)
    cells = [
        cell.text for table in Document(io.BytesIO(docx_out.getvalue())).tables for r in table.rows for cell in r.cells
    ]
    assert "alice.\u200bwonderland@\u200bdemo.\u200blocal" in cells


def test_the_short_report_of_the_demo_rc_stays_within_five_pages(reviewer, generate, capsys):
    call_command("seed_demo")
    capsys.readouterr()
    rc = ReleaseCandidate.objects.get(name="shop-2026.11-rc2")
    short = generate(reviewer, rc, edition="short")
    assert len(_pdf(short).pages) <= 5
    assert short.figures["totals"]["in_scope"] == 240  # three Web Shop suites of 80 cases


def test_the_grounded_narrative_keeps_usable_ai_sections_and_replaces_the_rest():
    from reports.narrative import Narrative, narrative_grounded

    go = {"release_candidate": "rc", "totals": {"total": 2, "pass": 2}, "gate": {"verdict": "GO", "reasons": []}}
    kept = narrative_grounded(
        Narrative(summary="All passed.", risks=["Search is slow."], recommendation="Release it.", source="ai"),
        go,
        scope="All suites",
    )
    assert kept.sources == {"summary": "ai", "risks": "ai", "recommendation": "ai"} and kept.note == ""
    nothing = narrative_grounded(
        Narrative(summary=" ", risks=["None"], recommendation="", source="ai"), go, scope="All suites"
    )
    assert nothing.source == "fallback" and set(nothing.sources.values()) == {"fallback"}
    assert nothing.summary.startswith("rc (All suites)") and nothing.risks and nothing.recommendation
    blocked = {**go, "gate": {"verdict": "GO", "reasons": [], "new_p1_failures": ["P1-1"]}}
    ship = narrative_grounded(
        Narrative(summary="Fine.", risks=["P1-1 fails."], recommendation="Ship it.", source="ai"),
        blocked,
        scope="All suites",
    )
    assert ship.sources["recommendation"] == "fallback" and ship.recommendation != "Ship it."

"""Report rendering speed and memory (QUALITY "reports"):

- PDF for 10k cases <= 2.5 x a plain reportlab canvas drawing of the same rows (same font, same page size), measured
  side by side in this run;
- t(10k) / t(1k) <= 12 for PDF and for DOCX (no quadratic tables);
- informational: a whole generation job for a 10k-case suite (figures from the database, narrative, both files,
  storage) and the peak Python memory of each renderer.

The 10k cases are written with pymongo, then the metric summaries are rebuilt by the releases service.
"""

from __future__ import annotations

import io
import time
import tracemalloc
from collections.abc import Callable
from decimal import Decimal

from benchmarks.table import BenchRow

SIZES = (1_000, 10_000)


def _best_of(function: Callable[[], None], repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def _peak_mib(function: Callable[[], None]) -> float:
    tracemalloc.start()
    try:
        function()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def _plain_drawing(rows, out) -> None:
    """The reference: every appendix cell drawn with canvas.drawString, one line per case, no layout engine."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    from reports.fonts import register_fonts

    regular, _bold = register_fonts()
    canvas = Canvas(out, pagesize=A4)
    columns = (40, 110, 170, 330, 390, 450, 470, 510)
    y = 800.0
    canvas.setFont(regular, 7.5)
    for row in rows:
        values = (
            row.suite,
            row.key,
            row.title,
            row.category,
            row.owner,
            f"P{row.priority}",
            row.status,
            ", ".join(str(i) for i in row.mantis_ids),
        )
        for x, value in zip(columns, values, strict=True):
            canvas.drawString(x, y, value)
        y -= 10.7
        if y < 50:
            canvas.showPage()
            canvas.setFont(regular, 7.5)
            y = 800.0
    canvas.save()


def _content(count: int):
    from tests.reports.samples import sample_content

    return sample_content(count)


def _generation_job(count: int) -> tuple[float, str]:
    from unittest import mock

    from accounts.models import User
    from reports import services
    from reports.models import Report
    from tests.reports.samples import seed_large_suite

    rc_name = seed_large_suite(count)
    user = User.objects.create_user(email="bench-reports@example.com", password=None, role="reviewer")
    with mock.patch("reports.tasks.report_generate_task.apply_async"):
        report = services.report_request(actor=user, release_candidate=rc_name)
    started = time.perf_counter()
    services.report_generate(report_id=str(report.pk))
    elapsed = time.perf_counter() - started
    report = Report.objects.get(pk=report.pk)
    detail = f"status {report.status}, PDF {report.pdf_size / 2**20:.1f} MiB, DOCX {report.docx_size / 2**20:.1f} MiB"
    services.report_delete(report=report, actor=User(role="admin", is_active=True, email="bench@x", pk=user.pk))
    return elapsed, detail


def run() -> list[BenchRow]:
    from reports.docx_renderer import render_docx
    from reports.pdf_renderer import render_pdf

    contents = {count: _content(count) for count in SIZES}
    big = contents[SIZES[-1]]
    for content in contents.values():
        content.ai_cost = Decimal("0")
    plain = _best_of(lambda: _plain_drawing(big.cases, io.BytesIO()))
    pdf = {count: _best_of(lambda c=content: render_pdf(c, io.BytesIO())) for count, content in contents.items()}
    docx = {count: _best_of(lambda c=content: render_docx(c, io.BytesIO())) for count, content in contents.items()}
    pdf_peak = _peak_mib(lambda: render_pdf(big, io.BytesIO()))
    docx_peak = _peak_mib(lambda: render_docx(big, io.BytesIO()))
    job_seconds, job_detail = _generation_job(SIZES[-1])

    small, large = SIZES
    pdf_vs_plain = pdf[large] / plain
    pdf_growth = pdf[large] / pdf[small]
    docx_growth = docx[large] / docx[small]
    return [
        BenchRow(
            "reports",
            "PDF 10k / plain drawing 10k",
            pdf_vs_plain,
            "<= 2.5",
            pdf_vs_plain <= 2.5,
            f"PDF {pdf[large]:.2f}s, plain canvas {plain:.2f}s",
        ),
        BenchRow(
            "reports",
            "PDF t(10k)/t(1k)",
            pdf_growth,
            "<= 12",
            pdf_growth <= 12,
            f"1k {pdf[small]:.2f}s, 10k {pdf[large]:.2f}s",
        ),
        BenchRow(
            "reports",
            "DOCX t(10k)/t(1k)",
            docx_growth,
            "<= 12",
            docx_growth <= 12,
            f"1k {docx[small]:.2f}s, 10k {docx[large]:.2f}s",
        ),
        BenchRow("reports", "PDF 10k peak memory MiB", pdf_peak, "info", True, "tracemalloc peak while rendering"),
        BenchRow("reports", "DOCX 10k peak memory MiB", docx_peak, "info", True, "tracemalloc peak while rendering"),
        BenchRow(
            "reports",
            "generation job 10k cases s",
            job_seconds,
            "info",
            True,
            f"figures from DB + narrative + PDF + DOCX + storage; {job_detail}",
        ),
    ]

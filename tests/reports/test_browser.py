"""Real Chromium and a real Celery worker: generate a report from the page, watch it finish, download the PDF and
render its first page with pdftoppm."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.conf import settings
from playwright.sync_api import expect
from pypdf import PdfReader

from reports.models import Report
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_generates_a_report_and_downloads_a_pdf_that_opens(
    page, celery_worker_process, report_data, make_user, tmp_path
):
    reviewer = make_user("reviewer")
    browser_login(page, reviewer.email, reviewer.raw_password)
    page.goto("/reports/")
    page.click("text=Generate a report")
    page.select_option("select[name=release_candidate]", label="RC-3")
    # reports.js hides the RC being reported on from the baseline choices.
    # (expect retries: the form's script may not have run yet right after the page was opened)
    expect(page.locator(f"select[name=baseline] option[value='{report_data.rc3.pk}']")).to_be_disabled()
    page.select_option("select[name=baseline]", label="RC-1")
    page.click("#report-form button[type=submit]")

    page.wait_for_url("**/reports/*/")
    download_link = page.locator("[data-testid=download-pdf]")
    download_link.wait_for(timeout=90_000)  # the worker renders the report; htmx polling shows it when ready
    assert page.locator("#report-status").get_attribute("data-status") == "ready"
    assert "NO-GO" in page.locator("#report-status").inner_text()
    assert "Recommendation" in page.locator("#report-status").inner_text()

    with page.expect_download() as download_info:
        download_link.click()
    download = download_info.value
    assert download.suggested_filename == "report-rc-3-all-suites.pdf"
    pdf_path = tmp_path / "report.pdf"
    download.save_as(pdf_path)

    reader = PdfReader(pdf_path)
    assert "Release quality report" in reader.pages[0].extract_text()
    assert "Compared with RC-1" in reader.pages[0].extract_text()
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm is missing: install Debian's poppler-utils (.ci/run does)"
    subprocess.run(
        [pdftoppm, "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf_path), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    rendered = list(tmp_path.glob("page*.png"))
    assert len(rendered) == 1 and rendered[0].stat().st_size > 2_000
    assert page.problems == []

    report = Report.objects.get()
    assert report.status == "ready" and report.baseline == report_data.rc1
    shutil.rmtree(settings.MEDIA_ROOT / "reports" / str(report.pk), ignore_errors=True)

"""Real Chromium + a real worker: upload a file with an error, see it in the preview, upload the fixed file,
confirm, and watch the progress bar reach 100 %; no console errors or CSP violations."""

from __future__ import annotations

import pytest

from imports.models import ImportJob
from releases.models import TestCase
from tests.conftest import browser_login
from tests.imports.conftest import case_row, csv_bytes

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_it_uploads_fixes_confirms_and_shows_progress(page, make_user, celery_worker_process):
    user = make_user("reviewer")
    broken = csv_bytes([case_row(n, notes="<b>bold</b>") for n in range(1, 40)] + [case_row(40, status="passed")])
    fixed = csv_bytes([case_row(n, notes="<b>bold</b>") for n in range(1, 41)])
    browser_login(page, user.email, user.raw_password)

    page.goto("/imports/")
    page.set_input_files("#import-file", {"name": "cases.csv", "mimeType": "text/csv", "buffer": broken})
    page.click("#import-upload-form button[type=submit]")
    page.wait_for_selector("table.import-errors")
    assert "invalid_status" in page.locator("table.import-errors").inner_text()
    assert "41" in page.locator("table.import-errors").inner_text()  # the row of the bad status
    assert page.locator("#import-confirm").count() == 0
    assert page.locator("table.import-preview b").count() == 0  # HTML shown as text

    page.goto("/imports/")
    page.set_input_files("#import-file", {"name": "cases-fixed.csv", "mimeType": "text/csv", "buffer": fixed})
    page.click("#import-upload-form button[type=submit]")
    page.wait_for_selector("#import-confirm")
    assert "<b>bold</b>" in page.locator("table.import-preview").inner_text()
    page.click("#import-confirm")
    page.wait_for_selector("#import-progress")
    page.wait_for_selector('[data-status="succeeded"]', timeout=90_000)
    assert page.locator("#import-progress").get_attribute("value") == "100"
    assert page.locator("#import-percent").inner_text() == "100 %"
    page.reload()  # the page survives reloads: same job, same state
    assert page.locator('[data-status="succeeded"]').count() == 1
    assert TestCase.objects.count() == 40
    assert ImportJob.objects.filter(status="succeeded").count() == 1
    assert page.problems == []

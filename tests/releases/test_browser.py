"""Real Chromium: a reviewer records runs in the grid (click and keyboard) and watches the dashboard update."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from releases import services
from releases.models import TestRun
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_records_runs_in_the_grid_and_the_dashboard_updates(page, make_user, settings):
    settings.RELEASES_DASHBOARD_POLL_SECONDS = 1
    reviewer = make_user("reviewer")
    suite = services.suite_create(name="Checkout", product="Web Shop", actor=reviewer)
    services.release_candidate_create(name="rc1", actor=reviewer)
    rc = services.release_candidate_create(name="rc2", actor=reviewer)
    cases = [
        services.case_create(
            suite=suite,
            key=f"CHK-{n}",
            title=f"Checkout step {n}",
            category="cart",
            owner="ann",
            priority=1 if n == 1 else 3,
            actor=reviewer,
        )
        for n in (1, 2, 3)
    ]
    services.test_run_record(case=cases[2], release_candidate=rc, status="pass", actor=reviewer)

    browser_login(page, reviewer.email, reviewer.raw_password)
    page.goto("/dashboard/?rc=rc2")
    assert page.locator("#total-pass").inner_text() == "1"
    assert page.locator("#total-fail").inner_text() == "0"
    assert page.locator("canvas#chart-trend").count() == 1
    assert page.evaluate("typeof Chart") == "function"

    grid = page.context.new_page()
    grid.problems = []
    grid.on("console", lambda message: message.type == "error" and grid.problems.append(message.text))
    grid.on("pageerror", lambda error: grid.problems.append(str(error)))
    grid.goto(f"/runs/grid/?rc=rc2&suite={suite.pk}")
    row = grid.locator(f"#grid-row-{cases[0].pk}")
    row.locator("summary", has_text="Fail").click()  # opens the row's fail form (Mantis ids, note)
    row.get_by_role("button", name="Record fail").click()
    grid.locator(f"#grid-row-{cases[0].pk} .grid-status .status-fail").wait_for()
    # Keyboard: the second row, "p" records a pass.
    grid.locator(f"#grid-row-{cases[1].pk}").focus()
    grid.keyboard.press("p")
    grid.locator(f"#grid-row-{cases[1].pk} .grid-status .status-pass").wait_for()

    # The dashboard polls its live region: the new counts and the NO-GO gate appear without a reload.
    expect(page.locator("#total-fail")).to_have_text("1")
    expect(page.locator("#total-pass")).to_have_text("2")
    expect(page.locator(".gate .verdict")).to_have_text("NO-GO")
    assert page.evaluate("Chart.getChart(document.getElementById('chart-owner')).data.datasets[1].data[0]") == 1
    assert TestRun.objects.filter(release_candidate=rc, is_latest=True).count() == 3
    assert page.problems == []
    assert grid.problems == []

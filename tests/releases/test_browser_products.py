"""Real Chromium: a reviewer picks a product in the header, and the pages and the case page's "Record a run" stay in
that product."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from releases import services
from releases.models import TestRun
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_picks_a_product_and_records_a_run_in_its_rc(page, make_user):
    reviewer = make_user("reviewer")
    shop = services.suite_create(name="Checkout", product="Web Shop", actor=reviewer)
    app = services.suite_create(name="Sync", product="Mobile App", actor=reviewer)
    app_rc = services.release_candidate_create(name="app-1", product="Mobile App", actor=reviewer)
    shop_rc = services.release_candidate_create(name="shop-1", product="Web Shop", actor=reviewer)  # newest overall
    shop_case = services.case_create(
        suite=shop, key="SHOP-1", title="Pay", category="cart", owner="ann", actor=reviewer
    )
    app_case = services.case_create(
        suite=app, key="APP-1", title="Sync offline edits", category="sync", owner="bob", actor=reviewer
    )
    services.test_run_record(case=shop_case, release_candidate=shop_rc, status="pass", actor=reviewer)

    browser_login(page, reviewer.email, reviewer.raw_password)
    page.goto("/dashboard/")
    expect(page.locator("h1")).to_contain_text("shop-1")  # the default: the product of the newest RC in testing
    page.select_option("#product-chooser", "Mobile App")
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("h1")).to_contain_text("app-1")
    assert "product=Mobile+App" in page.url
    expect(page.locator("#total-not-run")).to_have_text("1")

    # Remembered: the run grid opens on the chosen product without ?product=.
    page.goto("/runs/grid/")
    expect(page.locator("body")).to_contain_text("APP-1")
    assert "SHOP-1" not in page.locator("main").inner_text()

    page.goto(f"/cases/{app_case.pk}/")
    select = page.locator("#run-form select[name=release_candidate]")
    assert select.locator("option:checked").inner_text() == "app-1"
    assert "shop-1" not in select.inner_text()
    page.locator("#run-form select[name=status]").select_option("fail")
    page.get_by_role("button", name="Record run").click()
    expect(page.locator("#case-history")).to_contain_text("app-1")
    run = TestRun.objects.get(case=app_case)
    assert run.release_candidate_id == app_rc.pk and run.status == "fail"
    assert page.problems == []

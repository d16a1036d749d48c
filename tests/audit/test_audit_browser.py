"""Real Chromium: an admin opens the audit log from the navigation, filters it and pages it through htmx; no CSP
violation or console error on the way."""

import pytest
from playwright.sync_api import expect

from audit.services import audit_record
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_filters_and_pages_the_audit_log(page, make_user, settings):
    admin = make_user("admin")
    viewer = make_user("viewer")
    for index in range(55):
        audit_record(action="case.update", actor=viewer, resource=f"case:{index}")
    audit_record(action="login.failure", actor_email="ghost@example.com", outcome="failure")
    settings.MFA_REQUIRED_ROLES = []  # this test is about the audit page, not the MFA enrolment gate

    browser_login(page, admin.email, admin.raw_password)
    page.locator("header nav a", has_text="Audit log").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Audit log"
    rows = page.locator("#audit-events tbody tr")
    expect(rows).to_have_count(50)

    page.locator("#audit-events a", has_text="Older events").click()
    expect(rows).to_have_count(7)  # 57 events: the admin's own login included
    assert "before=" in page.url  # hx-push-url keeps the page linkable

    page.fill("input[name=action]", "login.failure")
    page.click("form.audit-filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ghost@example.com")
    assert page.problems == []

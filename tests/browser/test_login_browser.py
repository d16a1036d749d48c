"""Real Chromium: the home page, logging in as a seeded user, the navigation, no CSP violations."""

import pytest
from django.core.management import call_command

from accounts.models import User
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_seeded_user_logs_in_and_sees_the_navigation(page, capsys):
    call_command("seed_demo", "--cases-per-suite", "5")
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "reviewer@demo.local" in line)
    password = line.split("password: ")[1].strip()

    page.goto("/")
    assert page.locator("h1").inner_text() == "Release quality, at a glance"
    browser_login(page, "reviewer@demo.local", password)

    assert page.locator("header .whoami").inner_text().startswith("reviewer@demo.local")
    assert page.locator("header nav a", has_text="Report Platform").count() == 1
    assert page.locator("header button", has_text="Log out").count() == 1
    assert User.objects.get(email="reviewer@demo.local").last_login is not None
    # htmx loaded from our static files, configured by the meta tag, with no CSP complaints.
    assert page.evaluate("typeof htmx") == "object"
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    assert page.problems == []


def test_a_wrong_password_shows_an_error_and_no_session(page, make_user):
    user = make_user("viewer")
    browser_login(page, user.email, "not-the-password-123")
    assert "/accounts/login/" in page.url
    assert page.locator("header .whoami").count() == 0
    assert page.problems == [] or all("401" in p or "400" in p for p in page.problems)

"""Real Chromium: sign up, open the verification mail, confirm by POST, enrol TOTP from the QR page (code computed
from the shown secret), log out, log in again with a TOTP code; all inside our layout, no CSP violation."""

from __future__ import annotations

import time

import pytest
import time_machine
from django.core import mail

from accounts.models import User
from tests.accounts.helpers import last_link, totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "browser.person@example.com"
PASSWORD = "a-long-passphrase-42"


def _submit(page, selector="main form button[type=submit]"):
    page.click(selector)
    page.wait_for_load_state()


def test_it_signs_up_verifies_enrols_totp_and_logs_in_with_a_code(page):
    mail.outbox.clear()
    page.goto("/accounts/signup/")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    _submit(page)
    assert "/accounts/confirm-email/" in page.url
    assert page.locator("header .whoami").count() == 0  # no session before verification

    page.goto(last_link("/accounts/confirm-email/"))
    assert not User.objects.get(email=EMAIL).verified  # opening the link (GET) confirms nothing
    _submit(page)
    assert User.objects.get(email=EMAIL).verified

    page.goto("/accounts/login/")
    page.fill("input[name=login]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    _submit(page)
    assert page.locator("header .whoami").inner_text().startswith(EMAIL)

    page.goto("/accounts/2fa/totp/activate/")
    assert "/accounts/reauthenticate/" in page.url  # changing MFA needs the password again
    page.fill("input[name=password]", PASSWORD)
    _submit(page)
    assert "/accounts/2fa/totp/activate/" in page.url
    qr = page.locator("main img").first.get_attribute("src")
    assert qr.startswith("data:image/svg+xml")
    secret = page.locator("#authenticator_secret").input_value()
    page.fill("input[name=code]", totp_now(secret))
    _submit(page)
    assert "/accounts/2fa/totp/activate/" not in page.url

    page.goto("/account/security/")
    assert page.locator("#mfa-status").inner_text() == "authenticator app on"
    page.click("header form button:has-text('Log out')")
    page.wait_for_load_state()
    assert page.locator("header .whoami").count() == 0

    # The enrolment code was used; log in during the next 30 s window with a fresh code.
    with time_machine.travel(time.time() + 30, tick=True):
        page.goto("/accounts/login/")
        page.fill("input[name=login]", EMAIL)
        page.fill("input[name=password]", PASSWORD)
        _submit(page)
        assert "/accounts/2fa/authenticate/" in page.url
        assert page.locator("header .whoami").count() == 0
        page.fill("input[name=code]", totp_now(secret))
        _submit(page)
        assert page.locator("header .whoami").inner_text().startswith(EMAIL)
    assert page.problems == []

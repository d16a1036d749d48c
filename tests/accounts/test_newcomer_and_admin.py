"""What a newcomer and an admin meet (issue 15): mails in the site's name, the dashboard after login, sign-up
errors beside their fields, a reason when an admin's change signed you out, the users page and the Django admin."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from accounts import services
from accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_sends_mails_in_the_sites_name_from_the_configured_address(client, make_user, settings):
    settings.SITE_NAME = "Acme Quality"
    settings.DEFAULT_FROM_EMAIL = "Acme Quality <quality@acme.test>"
    user = make_user("viewer")
    assert client.post("/accounts/password/reset/", {"email": user.email}).status_code == 302
    message = mail.outbox[-1]
    assert message.from_email == "Acme Quality <quality@acme.test>"
    assert "Hello from Acme Quality!" in message.body and "testserver" not in message.body.split("\n")[0]
    assert "Thank you for using Acme Quality!" in message.body


def test_it_lands_on_the_dashboard_after_login(client, make_user):
    user = make_user("viewer", password=PASSWORD)
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"


def test_it_shows_sign_up_errors_beside_their_fields_apart_from_the_help_text(client):
    response = client.post(
        "/accounts/signup/", {"email": "not-an-email", "password1": "short", "password2": "different"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    email_field = body[body.index('<p class="field has-errors">') :]
    email_field = email_field[: email_field.index("</p>")]
    assert 'name="email"' in email_field and 'class="field-errors"' in email_field
    assert 'role="alert"' in email_field and "valid email" in email_field.lower()
    assert body.count('class="help-text"') >= 1 and '<ul class="errorlist">' not in body


def test_it_tells_a_user_signed_out_by_a_role_change_why(make_user):
    admin, member = make_user("admin"), make_user("reviewer", password=PASSWORD)
    browser = Client()
    assert browser.post("/accounts/login/", {"login": member.email, "password": PASSWORD}).status_code == 302
    assert browser.get("/dashboard/").status_code == 200
    services.user_change_role(actor=admin, user=member, role="viewer", request=None)
    response = browser.get("/dashboard/", follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert "An administrator changed your role, so you were signed out. Please sign in again." in body
    again = browser.get("/accounts/login/").content.decode()
    assert "changed your role" not in again  # said once


def test_it_confirms_deactivation_with_a_secondary_button_never_on_the_admins_own_row(make_user):
    admin, member = make_user("admin"), make_user("viewer")
    page = _client_for(admin).get("/account/users/").content.decode()
    own_row = page[page.index(f"<td>{admin.email}</td>") :].split("</tr>")[0]
    member_row = page[page.index(f"<td>{member.email}</td>") :].split("</tr>")[0]
    assert "Deactivate" not in own_row and "(you)" in own_row
    assert 'class="secondary danger"' in member_row and f'data-confirm="Deactivate {member.email}?' in member_row


def test_the_django_admin_shows_a_password_summary_not_the_hash_and_plural_names(make_user):
    admin = make_user("admin")
    stored = User.objects.get(pk=admin.pk).password
    staff = _client_for(admin)
    page = staff.get(f"/admin/accounts/user/{admin.pk}/change/").content.decode()
    assert stored not in page and stored.split("$")[-1] not in page
    assert "algorithm" in page and "The password itself is never shown" in page
    index = staff.get("/admin/").content.decode()
    assert "Token families" in index and "Quality summaries" in index
    assert "Token familys" not in index and "Quality summarys" not in index

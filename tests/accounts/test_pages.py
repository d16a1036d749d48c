"""Sessions-and-devices page, the admins' users-and-roles page, the Django admin's user form; C2 for accounts."""

from __future__ import annotations

import pytest
from allauth.usersessions.models import UserSession
from django.test import Client

from accounts import services
from accounts.models import TokenFamily, User
from audit.models import AuditEvent
from tests.accounts.helpers import events

pytestmark = pytest.mark.django_db


def _browser(user, agent="Firefox/140", ip="192.0.2.10") -> Client:
    client = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    response = client.post("/accounts/login/", {"login": user.email, "password": user.raw_password})
    assert response.status_code == 302
    return client


def _api_login(user, device="CI runner"):
    response = Client(HTTP_USER_AGENT="curl/8", REMOTE_ADDR="10.0.0.5").post(
        "/api/v1/auth/login",
        {"email": user.email, "password": user.raw_password, "device_name": device},
        content_type="application/json",
    )
    assert response.status_code == 200
    return response.json()


def test_it_lists_browser_sessions_and_api_logins_and_ends_them(make_user):
    user = make_user("viewer")
    laptop = _browser(user, agent="Firefox/140 laptop", ip="192.0.2.10")
    phone = _browser(user, agent="Safari/18 phone", ip="192.0.2.20")
    pair = _api_login(user)

    html = laptop.get("/account/security/").content.decode()
    assert "Firefox/140 laptop" in html and "Safari/18 phone" in html and "CI runner" in html
    assert "192.0.2.20" in html and "10.0.0.5" in html and "this browser" in html

    phone_session = UserSession.objects.get(user=user, user_agent="Safari/18 phone")
    response = laptop.post(f"/account/security/sessions/{phone_session.pk}/end/")
    assert response.status_code == 302
    assert phone.get("/account/security/").status_code == 302  # the phone is signed out
    family = TokenFamily.objects.get(user=user)
    assert laptop.post(f"/account/security/tokens/{family.pk}/end/").status_code == 302
    api = Client()
    assert api.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {pair['access']}").status_code == 401
    assert len(events("auth.session_end")) == 1 and len(events("auth.token_family_end")) == 1
    assert "CI runner" not in laptop.get("/account/security/").content.decode()


def test_it_refuses_to_end_someone_elses_session_or_token_family(make_user):
    owner, intruder = make_user("viewer"), make_user("admin")
    _browser(owner)
    _api_login(owner)
    session = UserSession.objects.get(user=owner)
    family = TokenFamily.objects.get(user=owner)
    client = _browser(intruder)
    before = AuditEvent.objects.count()
    assert client.post(f"/account/security/sessions/{session.pk}/end/").status_code == 404
    assert client.post(f"/account/security/tokens/{family.pk}/end/").status_code == 404
    assert client.post("/account/security/tokens/not-an-id/end/").status_code == 404
    assert UserSession.objects.filter(pk=session.pk).exists()
    assert TokenFamily.objects.get(pk=family.pk).revoked_at is None
    assert AuditEvent.objects.count() == before


def test_it_lets_an_admin_change_a_role_which_ends_the_targets_sessions_and_tokens(make_user):
    admin, target = make_user("admin"), make_user("viewer")
    target_browser = _browser(target)
    pair = _api_login(target)
    client = Client()
    client.force_login(admin)
    page = client.get("/account/users/")
    assert page.status_code == 200 and target.email in page.content.decode()
    response = client.post(f"/account/users/{target.pk}/role/", {"role": "reviewer"})
    assert response.status_code == 302
    assert User.objects.get(pk=target.pk).role == "reviewer"
    assert target_browser.get("/account/security/").status_code == 302
    assert Client().get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {pair['access']}").status_code == 401
    changed = events("user.role_change")
    assert len(changed) == 1 and changed[0].metadata["from"] == "viewer" and changed[0].metadata["to"] == "reviewer"
    assert client.get("/account/security/").status_code == 200  # the admin's own session is untouched


def test_it_keeps_the_last_admin(make_user):
    admin = make_user("admin")
    client = Client()
    client.force_login(admin)
    response = client.post(f"/account/users/{admin.pk}/role/", {"role": "viewer"})
    assert response.status_code == 409
    assert "last admin" in response.content.decode()
    assert client.post(f"/account/users/{admin.pk}/active/", {}).status_code == 409
    assert User.objects.get(pk=admin.pk).role == "admin" and User.objects.get(pk=admin.pk).is_active
    second = make_user("admin")
    assert client.post(f"/account/users/{admin.pk}/role/", {"role": "viewer"}).status_code == 302
    assert User.objects.get(pk=admin.pk).role == "viewer"
    assert User.objects.get(pk=second.pk).role == "admin"
    assert len(events("user.role_change")) == 1


def test_it_rejects_bad_roles_unknown_users_and_non_admins(make_user):
    admin, reviewer, target = make_user("admin"), make_user("reviewer"), make_user("viewer")
    client = Client()
    client.force_login(admin)
    assert client.post(f"/account/users/{target.pk}/role/", {"role": "superuser"}).status_code == 400
    assert client.post("/account/users/5f00000000000000000000aa/role/", {"role": "admin"}).status_code == 404
    assert client.post("/account/users/zzz/role/", {"role": "admin"}).status_code == 404
    client.force_login(reviewer)
    assert client.post(f"/account/users/{target.pk}/role/", {"role": "admin"}).status_code == 403
    assert client.get("/account/users/").status_code == 403
    assert User.objects.get(pk=target.pk).role == "viewer"
    assert not events("user.role_change")


def test_it_deactivates_and_reactivates_with_one_event_each(make_user):
    admin, target = make_user("admin"), make_user("viewer")
    target_browser = _browser(target)
    client = Client()
    client.force_login(admin)
    assert client.post(f"/account/users/{target.pk}/active/", {}).status_code == 302
    assert not User.objects.get(pk=target.pk).is_active
    assert target_browser.get("/account/security/").status_code == 302
    assert client.post(f"/account/users/{target.pk}/active/", {"active": "on"}).status_code == 302
    assert User.objects.get(pk=target.pk).is_active
    assert len(events("user.deactivate")) == 1 and len(events("user.activate")) == 1


def test_it_routes_role_changes_in_the_django_admin_through_the_service(make_user):
    admin, target = make_user("admin"), make_user("viewer")
    _api_login(target)
    client = Client()
    client.force_login(admin)
    url = f"/admin/accounts/user/{target.pk}/change/"
    assert client.get(url).status_code == 200
    form = {
        "email": target.email,
        "display_name": "",
        "role": "reviewer",
        "verified": "on",
        "is_active": "on",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert User.objects.get(pk=target.pk).role == "reviewer"
    assert TokenFamily.objects.get(user=target).revoked_reason == "role_change"
    assert len(events("user.role_change")) == 1
    # The last admin cannot demote themself there either.
    response = client.post(f"/admin/accounts/user/{admin.pk}/change/", dict(form, email=admin.email, role="viewer"))
    assert User.objects.get(pk=admin.pk).role == "admin"


def test_it_ignores_mass_assigned_privileges_at_sign_up(client):
    client.post(
        "/accounts/signup/",
        {
            "email": "sneaky@example.com",
            "password1": "a-long-passphrase-42",
            "password2": "a-long-passphrase-42",
            "role": "admin",
            "is_staff": "on",
            "is_superuser": "on",
            "verified": "on",
        },
    )
    user = User.objects.get(email="sneaky@example.com")
    assert user.role == "viewer" and not user.is_staff and not user.is_superuser and not user.verified


def test_it_ends_sessions_via_the_service_without_audit_noise(make_user):
    user = make_user("viewer")
    _browser(user)
    _browser(user)
    assert services.sessions_end_for_user(user=user) == 2
    assert not UserSession.objects.filter(user=user).exists()

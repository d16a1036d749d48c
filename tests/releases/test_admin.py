"""Django admin for release data: lists with filters and search, writes through the services, read-only runs."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from releases.models import TestCase, TestRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_it_lists_every_release_model_with_filters_and_search(staff, make_case, make_rc, record):
    case = make_case(key="ADM-1")
    run = record(case, make_rc(), "fail")
    for url in (
        "/admin/releases/testsuite/",
        "/admin/releases/releasecandidate/?state__exact=testing",
        "/admin/releases/testcase/?q=ADM&is_deleted__exact=0",
        "/admin/releases/testrun/?status__exact=fail",
        "/admin/releases/qualitysummary/",
        f"/admin/releases/testcase/{case.pk}/change/",
        f"/admin/releases/testrun/{run.pk}/change/",
    ):
        response = staff.get(url)
        assert response.status_code == 200, url
    assert b"ADM-1" in staff.get("/admin/releases/testcase/?q=ADM").content
    # Runs are history: no add, no delete.
    assert staff.get("/admin/releases/testrun/add/").status_code == 403
    assert staff.post(f"/admin/releases/testrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert TestRun.objects.filter(pk=run.pk).exists()


def test_it_writes_through_the_services_with_audit_events(staff, suite):
    response = staff.post(
        "/admin/releases/testcase/add/",
        {
            "suite": suite.pk,
            "key": "ADM-2",
            "title": "From the admin",
            "category": "c",
            "owner": "o",
            "task": "",
            "priority": 2,
            "tags": "",
            "runs-TOTAL_FORMS": 0,
            "runs-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content[:500]
    case = TestCase.objects.get(key="ADM-2")
    assert AuditEvent.objects.filter(action="case.create", resource=f"case:{case.pk}").count() == 1
    response = staff.post(
        "/admin/releases/testcase/", {"action": "soft_delete_selected", "_selected_action": [str(case.pk)]}
    )
    assert response.status_code == 302
    assert TestCase.objects.get(pk=case.pk).is_deleted
    assert AuditEvent.objects.filter(action="case.delete", resource=f"case:{case.pk}").count() == 1


def test_it_keeps_the_admin_for_admins(make_user):
    client = Client()
    client.force_login(make_user("reviewer"))
    response = client.get("/admin/releases/testcase/")
    assert response.status_code in (302, 403)

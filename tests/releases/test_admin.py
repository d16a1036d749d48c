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


@pytest.fixture
def known_issue(reviewer):
    from releases import services

    return services.known_issue_link(
        product="Web", signature="KeyError: <str> in cart lookup", mantis_id=4711, actor=reviewer
    )


def test_it_lists_and_searches_known_issues(staff, known_issue, reviewer):
    from releases import services

    services.known_issue_link(product="Mobile", signature="TimeoutError: <n> ms", mantis_id=900, actor=reviewer)
    page = staff.get("/admin/releases/knownissue/").content.decode()
    for text in ("Web", "KeyError: &lt;str&gt; in cart lookup", "4711", "Mobile", "900", "Created at"):
        assert text in page, text
    found = staff.get("/admin/releases/knownissue/?q=cart").content.decode()
    assert "4711" in found and "TimeoutError" not in found
    assert "TimeoutError" in staff.get("/admin/releases/knownissue/?q=900").content.decode()
    assert "0 known issues" in staff.get("/admin/releases/knownissue/?q=nothing-like-it").content.decode()
    assert staff.get("/admin/releases/knownissue/?product=Mobile").status_code == 200
    # A link is viewed, not edited in place: no save button on its page.
    detail = staff.get(f"/admin/releases/knownissue/{known_issue.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()


def test_it_links_and_unlinks_known_issues_through_the_services(staff, known_issue):
    from releases.models import KnownIssue

    response = staff.post(
        "/admin/releases/knownissue/add/",
        {"product": "Web", "signature": "ValueError: bad total <n>", "mantis_id": 12},
    )
    assert response.status_code == 302, response.content[:500]
    added = KnownIssue.objects.get(signature="ValueError: bad total <n>")
    assert AuditEvent.objects.filter(action="known_issue.link", resource=f"known_issue:{added.pk}").count() == 1
    # The same signature twice: refused by the service, reported, nothing added.
    again = {"product": "Web", "signature": known_issue.signature, "mantis_id": 5}
    assert staff.post("/admin/releases/knownissue/add/", again, follow=True).status_code == 200
    assert KnownIssue.objects.filter(signature=known_issue.signature).count() == 1
    response = staff.post(f"/admin/releases/knownissue/{known_issue.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not KnownIssue.objects.filter(pk=known_issue.pk).exists()
    unlinked = AuditEvent.objects.get(action="known_issue.unlink", resource=f"known_issue:{known_issue.pk}")
    assert unlinked.metadata["mantis_id"] == 4711
    response = staff.post(
        "/admin/releases/knownissue/", {"action": "delete_selected", "_selected_action": [str(added.pk)], "post": "yes"}
    )
    assert response.status_code == 302 and KnownIssue.objects.count() == 0
    assert AuditEvent.objects.filter(action="known_issue.unlink").count() == 2


def test_it_keeps_the_known_issues_admin_for_admins(make_user, known_issue):
    from releases import services
    from releases.models import KnownIssue
    from report_platform.errors import Forbidden

    reviewer = make_user("reviewer")
    client = Client()
    client.force_login(reviewer)
    for url in ("/admin/releases/knownissue/", f"/admin/releases/knownissue/{known_issue.pk}/delete/"):
        assert client.get(url).status_code in (302, 403), url
    assert client.post(f"/admin/releases/knownissue/{known_issue.pk}/delete/", {"post": "yes"}).status_code in (
        302,
        403,
    )
    with pytest.raises(Forbidden):
        services.known_issue_unlink(issue=known_issue, actor=reviewer)
    assert KnownIssue.objects.filter(pk=known_issue.pk).exists()
    assert AuditEvent.objects.filter(action="known_issue.unlink", outcome="denied").count() == 1

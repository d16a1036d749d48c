"""The admins' audit page: filters, keyset pages, htmx partial, and the audited, formula-safe CSV export."""

import csv
import io
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_record, csv_safe_cell
from tests.audit.routes import ROUTES

LIST = reverse("audit:event_list")
EXPORT = reverse("audit:event_export")


def _export_rows(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def trail(reviewer, viewer):
    with time_machine.travel(datetime(2026, 11, 1, 12, tzinfo=UTC), tick=False):
        audit_record(action="login.success", actor=reviewer, resource=f"user:{reviewer.pk}")
        audit_record(action="case.delete", actor=reviewer, resource="case:aaa", outcome="denied")
    with time_machine.travel(datetime(2026, 11, 10, 12, tzinfo=UTC), tick=False):
        audit_record(action="login.failure", actor_email="ghost@example.com", outcome="failure")
        audit_record(action="report.download", actor=viewer, resource="report:bbb", metadata={"name": "=HYPERLINK(1)"})
    return {"reviewer": reviewer, "viewer": viewer}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["report.download", "login.failure", "case.delete", "login.success"]),
        ({"action": "login"}, ["login.failure", "login.success"]),
        ({"resource": "case:"}, ["case.delete"]),
        ({"actor": "GHOST@"}, ["login.failure"]),
        ({"date_from": "2026-11-10"}, ["report.download", "login.failure"]),
        ({"date_to": "2026-11-01"}, ["case.delete", "login.success"]),
        ({"date_from": "2026-11-02", "date_to": "2026-11-09"}, []),
    ],
)
def test_it_filters_events_by_actor_action_resource_and_date(admin_client, trail, query, expected):
    response = admin_client.get(LIST, query)
    assert response.status_code == 200
    assert [event.action for event in response.context["page"].events] == expected


@pytest.mark.django_db
def test_it_filters_by_an_exact_user_id(admin_client, trail):
    response = admin_client.get(LIST, {"actor": str(trail["viewer"].pk)})
    assert [event.action for event in response.context["page"].events] == ["report.download"]


@pytest.mark.django_db
def test_it_pages_with_a_keyset_cursor_and_renders_the_htmx_partial(admin_client, admin_user):
    for index in range(55):
        audit_record(action="case.update", actor=admin_user, resource=f"case:{index}")
    first = admin_client.get(LIST)
    assert [e.sequence for e in first.context["page"].events] == list(range(55, 5, -1))
    assert first.context["page"].next_before == 6
    assert "<html" in first.content.decode()
    second = admin_client.get(LIST, {"before": 6}, headers={"HX-Request": "true"})
    body = second.content.decode()
    assert "<html" not in body and 'id="audit-events"' in body
    assert [e.sequence for e in second.context["page"].events] == [5, 4, 3, 2, 1]
    assert second.context["page"].next_before is None
    assert "Older events" not in body


@pytest.mark.django_db
def test_it_escapes_event_content_in_the_page(admin_client, admin_user):
    audit_record(action="case.update", actor=admin_user, resource="case:<script>alert(1)</script>")
    body = admin_client.get(LIST).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


@pytest.mark.django_db
def test_it_reports_bad_filters_without_an_error_status(admin_client, trail):
    response = admin_client.get(LIST, {"date_from": "not-a-date", "before": "-3"})
    assert response.status_code == 200
    assert response.context["page"] is None
    assert set(response.context["form"].errors) == {"date_from", "before"}
    inverted = admin_client.get(LIST, {"date_from": "2026-11-10", "date_to": "2026-11-01"})
    assert "date_to" in inverted.context["form"].errors


@pytest.mark.django_db
def test_the_export_is_filtered_formula_safe_and_audited_exactly_once(admin_client, admin_user, trail):
    before = AuditEvent.objects.count()
    response = admin_client.get(EXPORT, {"action": "report"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-events-')
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    rows = _export_rows(response)
    assert [row["action"] for row in rows] == ["report.download"]
    assert rows[0]["metadata"] == '{"name": "=HYPERLINK(1)"}'  # JSON starts with "{": not a formula
    exports = AuditEvent.objects.filter(action="audit.export")
    assert AuditEvent.objects.count() == before + 1
    assert exports.count() == 1
    event = exports.get()
    assert (event.actor_id, event.outcome, event.resource) == (str(admin_user.pk), "success", "auditEvents")
    assert event.metadata == {"filters": {"action": "report"}, "rows": 1}
    assert event.ip == "127.0.0.1"


@pytest.mark.django_db
def test_the_export_neutralises_formula_cells(admin_client, admin_user):
    for resource in ("=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "\r=1", "plain"):
        audit_record(action="case.update", actor=admin_user, resource=resource)
    rows = _export_rows(admin_client.get(EXPORT, {"action": "case."}))
    assert [row["resource"] for row in rows] == ["plain", "'\r=1", "'\t=1", "'@SUM(A1)", "'-2", "'+1", "'=1+1"]


def test_csv_safe_cell_leaves_ordinary_text_alone():
    assert csv_safe_cell("login.success") == "login.success"
    assert csv_safe_cell(None) == ""
    assert csv_safe_cell(-5) == "'-5"
    assert csv_safe_cell("a=b") == "a=b"


@pytest.mark.django_db
def test_a_bad_export_filter_is_a_coded_400_and_writes_nothing(admin_client, trail):
    before = AuditEvent.objects.count()
    response = admin_client.get(EXPORT, {"date_to": "2026-13-45"})
    assert response.status_code == 400
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_only_admins_reach_the_audit_pages(client, make_user, name):
    url = reverse(name)
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    for role in ("viewer", "reviewer"):
        client.force_login(make_user(role))
        assert client.get(url).status_code == 403
    before = AuditEvent.objects.count()
    client.force_login(make_user("admin"))
    assert client.get(url).status_code == 200
    assert AuditEvent.objects.count() == before + (1 if name == "audit:event_export" else 0)


@pytest.mark.django_db
def test_the_nav_links_the_audit_log_for_admins_only(client, make_user):
    client.force_login(make_user("reviewer"))
    assert LIST not in client.get("/").content.decode()
    client.force_login(make_user("admin"))
    assert f'href="{LIST}"' in client.get("/").content.decode()


@pytest.mark.django_db
def test_the_event_ip_trusts_x_forwarded_for_only_from_a_trusted_proxy(admin_client, settings):
    spoofed = admin_client.get(EXPORT, headers={"X-Forwarded-For": "203.0.113.7"})
    assert spoofed.status_code == 200
    assert AuditEvent.objects.get(action="audit.export").ip == "127.0.0.1"  # the peer; the header is ignored
    settings.TRUSTED_PROXY_IPS = ["127.0.0.1"]
    proxied = admin_client.get(EXPORT, headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.7"})
    assert proxied.status_code == 200
    newest = AuditEvent.objects.filter(action="audit.export").order_by("-sequence").first()
    assert newest.ip == "203.0.113.7"  # the nearest hop that is not one of our proxies

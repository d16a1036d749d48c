import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.models import AuditEvent, ImmutableEventError
from audit.sealing import audit_seal_pending
from audit.selectors import audit_chain_verify
from audit.services import audit_record


def connection_database():
    from django.db import connection

    return connection.database


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_it_chains_events_and_detects_a_modified_one(reviewer):
    for index in range(3):
        audit_record(action="case.create", actor=reviewer, resource=f"case:{index}", metadata={"n": index})
    assert audit_chain_verify().ok
    assert audit_chain_verify().checked == 3
    # Tamper below the app, straight in the collection.
    from django.db import connection

    connection.database["auditEvents"].update_one({"sequence": 2}, {"$set": {"resource": "case:forged"}})
    report = audit_chain_verify()
    assert not report.ok
    assert report.first_broken_sequence == 2


@pytest.mark.django_db
def test_events_cannot_be_edited_or_deleted_through_the_app(reviewer):
    event = audit_record(action="login", actor=reviewer)
    with pytest.raises(ImmutableEventError):
        event.save()  # the event as recorded, not sealed yet
    with pytest.raises(ImmutableEventError):
        event.delete()
    sealed = AuditEvent.objects.get(pk=event.pk)
    assert sealed.sequence == 1
    with pytest.raises(ImmutableEventError):
        sealed.save()
    with pytest.raises(ImmutableEventError):
        sealed.delete()
    with pytest.raises(ImmutableEventError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(ImmutableEventError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "login"


@pytest.mark.django_db
def test_secrets_in_metadata_never_reach_the_trail():
    event = audit_record(action="login.failure", actor_email="x@example.com", metadata={"password": "hunter2", "n": 1})
    assert event.metadata == {"password": "[redacted]", "n": 1}
    assert AuditEvent.objects.get(pk=event.pk).metadata == {"password": "[redacted]", "n": 1}
    assert "hunter2" not in str(list(connection_database()["auditInbox"].find()))


@pytest.mark.django_db
def test_secrets_are_scrubbed_from_nested_metadata_lists_and_values():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    event = audit_record(
        action="token.reuse",
        metadata={
            "device": {"refresh_token": "abc", "ip": "10.0.0.1"},
            "notes": [f"header Bearer {'x' * 20}", {"totp_code": "123456"}],
            "echo": f"prompt had sk-{'a' * 24} and {jwt}",
            "count": 3,
        },
    )
    expected = {
        "device": {"refresh_token": "[redacted]", "ip": "10.0.0.1"},
        "notes": ["header [redacted]", {"totp_code": "[redacted]"}],
        "echo": "prompt had [redacted] and [redacted]",
        "count": 3,
    }
    assert event.metadata == expected
    assert AuditEvent.objects.get(pk=event.pk).metadata == expected
    assert audit_chain_verify().ok


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("new_password1", True),
        ("refresh_token", True),
        ("apiKey", True),
        ("api_key", True),
        ("reset_key", True),
        ("code", True),
        ("totp_code", True),
        ("recoveryCode", True),
        ("Authorization", True),
        ("session_id", True),
        ("key", False),
        ("error_code", False),
        ("status_code", False),
        ("keyboard", False),
        ("tokenizer_model", False),
        ("email", False),
        ("release_candidate", False),
    ],
)
def test_secret_metadata_keys_are_recognised_by_their_words(key, secret):
    from audit.services import _is_secret_key

    assert _is_secret_key(key) is secret


@pytest.mark.django_db
def test_audit_verify_command_passes_an_intact_chain_and_names_the_first_broken_link(reviewer):
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db import connection

    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert "Audit chain intact: 0 events verified. 0 events not yet sealed." in out.getvalue()
    for index in range(4):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert "Audit chain intact: 4 events verified. 0 events not yet sealed." in out.getvalue()

    connection.database["auditEvents"].update_one({"sequence": 3}, {"$set": {"outcome": "failure"}})
    audit_record(action="case.update", actor=reviewer, resource="case:pending")
    with pytest.raises(CommandError, match=r"broken at sequence 3: the event's content was modified \(2 events"):
        call_command("audit_verify", "--no-seal")
    with pytest.raises(CommandError, match=r"2 events before it verified; 1 events not yet sealed\)"):
        call_command("audit_verify", "--no-seal")


@pytest.mark.django_db
def test_audit_verify_reports_the_events_not_yet_sealed(reviewer):
    from django.core.management import call_command

    for index in range(3):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    out = io.StringIO()
    call_command("audit_verify", "--no-seal", stdout=out)  # checks the trail as it is: nothing sealed yet
    assert "Audit chain intact: 0 events verified. 3 events not yet sealed." in out.getvalue()
    report = audit_chain_verify(seal=False)
    assert (report.ok, report.checked, report.unsealed) == (True, 0, 3)
    out = io.StringIO()
    call_command("audit_verify", stdout=out)  # seals first, like every reader
    assert "Audit chain intact: 3 events verified. 0 events not yet sealed." in out.getvalue()


@pytest.mark.django_db
def test_audit_verify_detects_a_deleted_and_a_relinked_event(reviewer):
    from django.db import connection

    for index in range(4):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    audit_seal_pending()
    collection = connection.database["auditEvents"]
    second = collection.find_one({"sequence": 2})
    collection.delete_one({"sequence": 2})
    report = audit_chain_verify()
    assert (report.first_broken_sequence, report.reason) == (2, "an event is missing")
    # A forger who renumbers and recomputes one hash still breaks the next link.
    collection.insert_one(second | {"resource": "case:forged"})
    assert audit_chain_verify().first_broken_sequence == 2


@pytest.mark.django_db
def test_audit_verify_detects_an_event_inserted_after_the_newest_one(reviewer):
    """A forger who appends a well-formed event (right link, recomputed hash) is caught by the chain head, which
    only the sealer moves, in the same transaction as the events it seals."""
    from audit.services import event_hash

    for index in range(3):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    assert audit_chain_verify().ok
    newest = AuditEvent.objects.get(sequence=3)
    forged = AuditEvent(
        sequence=4,
        action="role.change",
        resource="user:forged",
        created_at=newest.created_at,
        previous_hash=newest.hash,
    )
    forged.hash = event_hash(forged)
    forged.save(force_insert=True)
    report = audit_chain_verify()
    assert (report.first_broken_sequence, report.reason) == (4, "an event was added after the chain head")


@pytest.mark.django_db
def test_audit_verify_detects_a_deleted_newest_event_at_once(reviewer):
    for index in range(3):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    assert audit_chain_verify().ok
    connection_database()["auditEvents"].delete_one({"sequence": 3})
    report = audit_chain_verify()
    assert (report.first_broken_sequence, report.reason) == (3, "an event is missing")


@pytest.mark.django_db
def test_audit_verify_exits_non_zero_from_the_command_line_when_broken(reviewer):
    """The real `manage.py` process: exit status 1 and the broken sequence on stderr."""
    from django.db import connection

    for index in range(3):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    audit_seal_pending()
    connection.database["auditEvents"].update_one({"sequence": 2}, {"$set": {"action": "case.delete"}})
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
        "MONGODB_NAME": connection.settings_dict["NAME"],
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "audit_verify"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert "Audit chain broken at sequence 2: the event's content was modified" in result.stderr


@pytest.mark.django_db
def test_the_django_admin_shows_events_read_only(admin_client, reviewer):
    from django.urls import reverse

    event = AuditEvent.objects.get(
        pk=audit_record(action="role.change", actor=reviewer, resource=f"user:{reviewer.pk}").pk
    )
    changelist = reverse("admin:audit_auditevent_changelist")
    listing = admin_client.get(changelist)
    assert listing.status_code == 200
    assert "role.change" in listing.content.decode()
    assert 'name="action"' not in listing.content.decode()  # no bulk actions (no "delete selected")
    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    detail_url = reverse("admin:audit_auditevent_change", args=[event.pk])
    detail = admin_client.get(detail_url)
    assert detail.status_code == 200 and 'type="submit"' not in detail.content.decode().split("<form", 2)[-1]
    posted = admin_client.post(detail_url, {"action": "forged", "sequence": event.sequence})
    assert posted.status_code == 403
    assert admin_client.get(reverse("admin:audit_auditevent_delete", args=[event.pk])).status_code == 403
    assert (
        admin_client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    )
    bulk = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [str(event.pk)]})
    assert bulk.status_code in (200, 302)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.hash) == ("role.change", event.hash)
    assert AuditEvent.objects.count() == 1
    assert audit_chain_verify().ok


def test_the_api_has_no_operation_that_writes_audit_events():
    from report_platform.api import api

    schema = api.get_openapi_schema()
    for path, operations in schema["paths"].items():
        if "audit" in path:
            assert set(operations) <= {"get"}, path


@pytest.mark.django_db
def test_the_chain_head_is_rebuilt_when_missing_and_repaired_when_behind(reviewer):
    from django.db import connection

    from audit.services import CHAIN_HEAD_COLLECTION

    heads = connection.database[CHAIN_HEAD_COLLECTION]

    def sealed_sequence(event: AuditEvent) -> int:
        return AuditEvent.objects.get(pk=event.pk).sequence

    for index in range(3):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    assert heads.find_one({"_id": "head"}) is None  # recording never touches the head: only the sealer does
    assert AuditEvent.objects.count() == 3
    assert heads.find_one({"_id": "head"})["sequence"] == 3
    heads.delete_many({})  # lost (e.g. a partial restore): rebuilt from the events
    assert sealed_sequence(audit_record(action="case.update", actor=reviewer)) == 4
    # Behind the events (a restore of an older head, a hand edit): the sealing that collides repairs it.
    heads.update_one({"_id": "head"}, {"$set": {"sequence": 2, "hash": "stale"}})
    assert sealed_sequence(audit_record(action="case.update", actor=reviewer)) == 5
    report = audit_chain_verify()
    assert report.ok and report.checked == 5


@pytest.mark.django_db
def test_a_deleted_newest_event_is_detected_once_the_chain_moves_on(reviewer):
    from django.db import connection

    for index in range(3):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    audit_seal_pending()
    connection.database["auditEvents"].delete_one({"sequence": 3})
    audit_record(action="case.update", actor=reviewer, resource="case:after")
    report = audit_chain_verify()
    assert (report.first_broken_sequence, report.reason) == (3, "an event is missing")

import pytest

from audit.models import AuditEvent, ImmutableEventError
from audit.selectors import audit_chain_verify
from audit.services import audit_record


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
        event.save()
    with pytest.raises(ImmutableEventError):
        event.delete()
    with pytest.raises(ImmutableEventError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(ImmutableEventError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "login"


@pytest.mark.django_db
def test_secrets_in_metadata_never_reach_the_trail():
    event = audit_record(action="login.failure", actor_email="x@example.com", metadata={"password": "hunter2", "n": 1})
    assert event.metadata == {"password": "[redacted]", "n": 1}

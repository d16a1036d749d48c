"""Recording is one insert of an unsealed event; one sealer gives events their sequence and hash, in order, exactly
once. Driven against the real server (threads, processes, a killed sealer), never a mocked database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.db import connection, connections
from django.utils import timezone
from django_mongodb_backend import transaction

from audit import sealing
from audit.models import AuditEvent
from audit.sealing import audit_seal_batch, audit_seal_pending
from audit.selectors import audit_chain_verify
from audit.services import CHAIN_HEAD_COLLECTION, INBOX_COLLECTION, audit_record

ROOT = Path(__file__).resolve().parents[2]


def inbox():
    return connection.database[INBOX_COLLECTION]


def stored_events():
    """The sealed events straight from the collection (no sealing on the way)."""
    return connection.database["auditEvents"]


def head() -> dict | None:
    return connection.database[CHAIN_HEAD_COLLECTION].find_one({"_id": "head"})


def subprocess_env() -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
        "MONGODB_NAME": connection.settings_dict["NAME"],
    }


def assert_one_intact_chain(total: int) -> None:
    sequences = sorted(AuditEvent.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, total + 1))
    assert inbox().count_documents({}) == 0
    assert head()["sequence"] == total
    report = audit_chain_verify()
    assert (report.ok, report.checked, report.unsealed) == (True, total, 0)


@pytest.mark.django_db
def test_recording_is_one_insert_that_never_touches_the_chain(reviewer):
    event = audit_record(action="case.update", actor=reviewer, resource="case:1")
    assert (event.sequence, event.hash) == (None, "")
    assert inbox().count_documents({}) == 1
    assert stored_events().count_documents({}) == 0
    assert head() is None
    sealed = AuditEvent.objects.get(pk=event.pk)  # readers seal first
    assert (sealed.sequence, sealed.action, sealed.resource) == (1, "case.update", "case:1")
    assert inbox().count_documents({}) == 0


@pytest.mark.django_db
def test_an_event_is_stored_with_its_action_or_not_at_all(reviewer):
    from accounts.models import User

    with pytest.raises(RuntimeError), transaction.atomic():
        user = User.objects.create_user(email="rolled-back@example.com", password="x" * 16, role="viewer")
        audit_record(action="user.create", actor=reviewer, resource=f"user:{user.pk}")
        raise RuntimeError("the action fails after recording its event")
    assert not User.objects.filter(email="rolled-back@example.com").exists()
    assert inbox().count_documents({}) == 0
    assert not AuditEvent.objects.filter(action="user.create").exists()

    with transaction.atomic():
        user = User.objects.create_user(email="committed@example.com", password="x" * 16, role="viewer")
        audit_record(action="user.create", actor=reviewer, resource=f"user:{user.pk}")
        # Inside the block nothing is sealed (the chain head is never part of a user's transaction).
        assert not AuditEvent.objects.filter(action="user.create").exists()
    assert AuditEvent.objects.get(action="user.create").resource == f"user:{user.pk}"
    assert_one_intact_chain(1)  # the rolled-back event left no gap in the chain


@pytest.mark.django_db
def test_sealing_refuses_to_run_inside_a_transaction(reviewer):
    audit_record(action="case.update", actor=reviewer)
    with transaction.atomic():
        with pytest.raises(RuntimeError, match="inside an open transaction"):
            audit_seal_pending()
        with pytest.raises(RuntimeError, match="inside an open transaction"):
            audit_seal_batch()
        assert AuditEvent.objects.count() == 0  # readers inside the block read the sealed trail, without sealing
    assert inbox().count_documents({}) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain(reviewer):
    """8 threads record at once while a sealer thread seals: no failure, every event sealed exactly once."""
    writers, per_writer = 8, 25
    barrier = threading.Barrier(writers + 1)
    writing = threading.Event()
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            barrier.wait()
            for n in range(per_writer):
                audit_record(action="case.update", actor=reviewer, resource=f"case:{index}-{n}")
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)
        finally:
            connections.close_all()

    def seal() -> None:
        try:
            barrier.wait()
            while writing.is_set():
                audit_seal_pending(wait_seconds=0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    writing.set()
    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    sealer = threading.Thread(target=seal)
    for thread in [*threads, sealer]:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    writing.clear()
    sealer.join(timeout=60)
    assert errors == []
    total = writers * per_writer
    assert_one_intact_chain(total)
    assert len(set(AuditEvent.objects.values_list("resource", flat=True))) == total


@pytest.mark.django_db(transaction=True)
def test_two_sealers_racing_seal_each_event_exactly_once(reviewer):
    """Both call the seal function directly (no lease): the transaction on the shared head lets one win each batch."""
    total = 300
    for index in range(total):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    barrier = threading.Barrier(2)
    sealed: list[int] = []
    errors: list[BaseException] = []

    def seal() -> None:
        try:
            barrier.wait()
            while (count := audit_seal_batch(limit=20)) > 0:
                sealed.append(count)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=seal) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sum(sealed) == total  # what the two sealers committed, together: each event once
    assert stored_events().count_documents({}) == total
    assert_one_intact_chain(total)
    assert len(set(AuditEvent.objects.values_list("resource", flat=True))) == total


@pytest.mark.django_db
def test_a_sealer_failing_mid_batch_leaves_nothing_half_sealed(reviewer, monkeypatch):
    for index in range(30):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    audit_seal_batch(limit=10)
    sealed_head = head()

    def crash(session, ids):  # after the head moved and the events were inserted, inside the transaction
        raise OSError("the sealer died here")

    monkeypatch.setattr(sealing, "_remove_from_inbox", crash)
    with pytest.raises(OSError):
        audit_seal_batch(limit=15)
    assert stored_events().count_documents({}) == 10
    assert inbox().count_documents({}) == 20
    assert head() == sealed_head
    monkeypatch.undo()
    assert_one_intact_chain(30)  # the next sealing resumes where the chain stands


@pytest.mark.django_db(transaction=True)
def test_a_sealer_killed_mid_batch_leaves_nothing_and_the_next_one_resumes(reviewer):
    """A real process holding the lease is SIGKILLed inside its sealing transaction (after its inserts). Nothing it
    wrote is visible; once its lease expires the next sealer seals everything, once."""
    total = 1200
    inbox().insert_many(
        [
            {
                "actor_id": "",
                "actor_email": "bulk@example.com",
                "action": "case.update",
                "resource": f"case:{index}",
                "outcome": "success",
                "ip": "",
                "user_agent": "",
                "request_id": "",
                "metadata": {"n": index},
                "created_at": timezone.now().replace(microsecond=0) + timedelta(milliseconds=index),
            }
            for index in range(total)
        ]
    )
    script = (
        "import sys, time, django; django.setup()\n"
        "from audit import sealing\n"
        "def stop(session, ids):\n"
        "    print('inserted', len(ids), flush=True)\n"
        "    time.sleep(120)\n"
        "sealing._remove_from_inbox = stop\n"
        "sealing.audit_seal_pending()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == f"inserted {sealing.BATCH}"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert stored_events().count_documents({}) == 0
    assert inbox().count_documents({}) == total
    assert head() is None
    assert audit_seal_pending(wait_seconds=0) == 0  # its lease is still live: this sealer leaves it alone
    started = time.monotonic()
    with time_machine.travel(timezone.now() + timedelta(seconds=sealing.LEASE_SECONDS + 1)):
        # Taking over the expired lease ends the dead holder's session, whose open transaction would otherwise
        # block every batch until the server's transaction lifetime limit (60 s).
        assert audit_seal_pending(wait_seconds=0) == total
    assert time.monotonic() - started < 20
    assert_one_intact_chain(total)


@pytest.mark.django_db
def test_concurrent_processes_never_fork_the_chain():
    """Three real processes (own MongoClient each) record at the same moment and seal as they go."""
    start_at = time.time() + 4  # all three wait for the same instant after their Django start-up
    script = (
        "import os, time, django; django.setup()\n"
        "from audit.services import audit_record\n"
        "from audit.sealing import audit_seal_pending\n"
        f"time.sleep(max(0, {start_at} - time.time()))\n"
        "for n in range(20):\n"
        "    audit_record(action='case.update', resource=f'case:{os.getpid()}-{n}')\n"
        "    if n % 5 == 4: audit_seal_pending()\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=subprocess_env()) for _ in range(3)]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0]
    assert_one_intact_chain(60)
    assert len(set(AuditEvent.objects.values_list("resource", flat=True))) == 60


@pytest.mark.django_db
def test_a_live_lease_keeps_other_sealers_out_until_it_expires(reviewer):
    audit_record(action="case.update", actor=reviewer)
    leases = connection.database[sealing.LEASE_COLLECTION]
    leases.insert_one({"_id": "sealer", "owner": "another-host", "expires_at": timezone.now() + timedelta(seconds=10)})
    assert audit_seal_pending(wait_seconds=0) == 0
    assert inbox().count_documents({}) == 1
    with time_machine.travel(timezone.now() + timedelta(seconds=11)):
        assert audit_seal_pending(wait_seconds=0) == 1  # the holder stopped renewing: the lease is taken over
    assert leases.count_documents({}) == 0  # released when done
    assert_one_intact_chain(1)


@pytest.mark.django_db
def test_events_are_sealed_in_the_order_they_were_recorded(reviewer):
    start = timezone.now()
    for index in range(5):
        with time_machine.travel(start + timedelta(seconds=index), tick=False):
            audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [event.resource for event in events] == [f"case:{index}" for index in range(5)]
    assert [event.sequence for event in events] == [1, 2, 3, 4, 5]


@pytest.mark.django_db
def test_the_beat_task_seals_and_is_scheduled_every_two_seconds(reviewer, settings):
    from audit.tasks import audit_seal_task

    schedule = [entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == "audit.seal"]
    assert [entry["schedule"] for entry in schedule] == [2.0]
    for index in range(3):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    assert audit_seal_task.apply().get() == 3
    assert stored_events().count_documents({}) == 3
    assert audit_seal_task.apply().get() == 0


@pytest.mark.worker
def test_a_real_worker_seals_what_this_process_recorded(celery_worker_process, reviewer):
    """The beat task's message, run by a real Celery worker process: the events recorded here are sealed there."""
    from audit.tasks import audit_seal_task

    for index in range(5):
        audit_record(action="case.update", actor=reviewer, resource=f"case:{index}")
    audit_seal_task.delay()
    deadline = time.monotonic() + 30
    while inbox().count_documents({}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_events().count_documents({}) == 5
    assert_one_intact_chain(5)


@pytest.mark.django_db
def test_metrics_report_the_unsealed_events_and_their_age(client, reviewer):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        audit_record(action="case.update", actor=reviewer)
        audit_record(action="case.update", actor=reviewer)
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        body = client.get("/metrics").content.decode()
    assert "rp_audit_unsealed_events 2.0" in body
    assert "rp_audit_unsealed_oldest_seconds 30.0" in body
    audit_seal_pending()
    body = client.get("/metrics").content.decode()
    assert "rp_audit_unsealed_events 0.0" in body
    assert "rp_audit_sealed_events_total" in body

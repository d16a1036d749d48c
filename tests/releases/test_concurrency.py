"""The run write path under real concurrency (threads and separate processes against the real server).

Writers of different cases never refuse each other; two runs of one (case, RC) at the same moment are both stored;
summaries equal a raw aggregation after any storm, a killed writer or a killed applier; one audit event per action.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection, connections
from django.utils import timezone

from audit.models import AuditEvent
from releases import services, store
from releases.models import TestCase, TestRun
from tests.releases.test_summaries import _raw_counts, _summary_counts

ROOT = Path(__file__).resolve().parents[2]


def _one_latest_per_pair() -> None:
    pairs = Counter(
        (run["case_id"], run["release_candidate_id"])
        for run in connection.database["testRuns"].find({"is_latest": True}, {"case_id": 1, "release_candidate_id": 1})
    )
    assert pairs and max(pairs.values()) == 1
    all_pairs = {
        (run["case_id"], run["release_candidate_id"])
        for run in connection.database["testRuns"].find({}, {"case_id": 1, "release_candidate_id": 1})
    }
    assert set(pairs) == all_pairs


def _threads(count: int, target) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            target(index)
        except BaseException as error:  # collected and asserted in the test thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


@pytest.mark.django_db(transaction=True)
def test_writers_on_different_cases_never_refuse_each_other(make_case, make_rc, reviewer):
    writers, per_writer = 8, 12
    rc = make_rc()
    cases = [make_case(owner=f"owner-{index % 3}", category=f"cat-{index % 2}") for index in range(writers)]

    def write(index: int) -> None:
        rng = random.Random(index)
        for _ in range(per_writer):
            services.test_run_record(
                case=cases[index], release_candidate=rc, status=rng.choice(["pass", "fail", "pending"]), actor=reviewer
            )

    assert _threads(writers, write) == []
    assert TestRun.objects.filter(release_candidate=rc).count() == writers * per_writer
    _one_latest_per_pair()
    assert _summary_counts() == _raw_counts()
    assert store.summary_deltas_pending() == 0
    assert AuditEvent.objects.filter(action="run.record").count() == writers * per_writer


@pytest.mark.django_db(transaction=True)
def test_runs_of_the_same_case_and_rc_at_the_same_moment_are_all_stored(make_case, make_rc, reviewer):
    writers = 8
    rc = make_rc()
    case = make_case()
    moment = timezone.now().replace(microsecond=0)

    def write(index: int) -> None:
        # The same executed_at for all: the latest is then decided by the run id.
        services.test_run_record(
            case=case, release_candidate=rc, status=["pass", "fail"][index % 2], executed_at=moment, actor=reviewer
        )

    assert _threads(writers, write) == []
    runs = list(connection.database["testRuns"].find({"case_id": case.pk}))
    assert len(runs) == writers
    latest = [run for run in runs if run["is_latest"]]
    assert len(latest) == 1
    assert latest[0]["_id"] == max(run["_id"] for run in runs)
    assert _summary_counts() == _raw_counts()
    assert AuditEvent.objects.filter(action="run.record").count() == writers


@pytest.mark.django_db(transaction=True)
def test_bulk_writers_single_writers_deletes_and_rebuilds_at_once_keep_summaries_exact(
    make_case, make_rc, reviewer, admin_user
):
    rcs = [make_rc(), make_rc()]
    cases = [make_case(owner=f"o{index % 4}", category=f"c{index % 3}") for index in range(24)]

    def storm(index: int) -> None:
        rng = random.Random(100 + index)
        for step in range(10):
            if index == 0:  # one admin deletes and restores cases that others are recording
                case = TestCase.objects.get(pk=rng.choice(cases).pk)
                if case.is_deleted:
                    services.case_restore(case=case, actor=admin_user)
                else:
                    services.case_delete(case=case, actor=admin_user)
            elif index == 1:  # a bulk writer over overlapping cases
                services.test_run_bulk_record(
                    cases=TestCase.objects.filter(pk__in=[case.pk for case in rng.sample(cases, 8)]),
                    release_candidate=rng.choice(rcs),
                    status=rng.choice(["pass", "fail"]),
                    actor=reviewer,
                )
            elif index == 2 and step % 3 == 0:  # a rebuild in the middle of it all
                services.summaries_rebuild(release_candidate_ids=[rc.pk for rc in rcs])
            else:
                case = TestCase.objects.get(pk=rng.choice(cases).pk)
                try:
                    services.test_run_record(
                        case=case,
                        release_candidate=rng.choice(rcs),
                        status=rng.choice(["pass", "fail"]),
                        actor=reviewer,
                    )
                except services.Conflict as error:  # the admin deleted it a moment ago: that refusal is correct
                    assert error.code == "case_deleted"

    assert _threads(6, storm) == []
    _one_latest_per_pair()
    assert _summary_counts() == _raw_counts()


@pytest.mark.django_db(transaction=True)
def test_an_applier_that_dies_mid_batch_applies_nothing_and_the_next_one_converges(
    make_case, make_rc, reviewer, monkeypatch
):
    rc = make_rc()
    cases = [make_case(owner=f"o{index}") for index in range(6)]
    store.summary_deltas_apply()  # the case-count rows of the new cases
    for case in cases:
        services.test_run_record(case=case, release_candidate=rc, status="fail", actor=reviewer)
    assert store.summary_deltas_pending() == 6
    summaries = connection.database["qualitySummaries"]
    real_update_one = type(summaries).update_one
    calls = {"n": 0}

    def dies_after_three(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("killed mid-batch")
        return real_update_one(self, *args, **kwargs)

    monkeypatch.setattr(type(summaries), "update_one", dies_after_three)
    with pytest.raises(RuntimeError):
        store.summary_deltas_apply()
    monkeypatch.undo()
    assert calls["n"] == 4
    assert summaries.count_documents({}) == 0  # the three increments made before dying were rolled back
    assert store.summary_deltas_pending() == 6
    assert _summary_counts() == _raw_counts()
    assert store.summary_deltas_pending() == 0


@pytest.mark.django_db(transaction=True)
def test_two_appliers_racing_apply_each_delta_once(make_case, make_rc, reviewer):
    rc = make_rc()
    cases = [make_case(owner=f"o{index % 5}") for index in range(40)]
    for index, case in enumerate(cases):
        services.test_run_record(case=case, release_candidate=rc, status=["pass", "fail"][index % 2], actor=reviewer)

    def apply(index: int) -> None:
        while store._apply_batch(7):  # bypasses the lock: correctness must not depend on it
            pass

    assert _threads(4, apply) == []
    assert store.summary_deltas_pending() == 0
    assert _summary_counts() == _raw_counts()


_WRITER = """
import os, random, django
django.setup()
from releases import services
from releases.models import ReleaseCandidate, TestCase
from accounts.models import User
actor = User.objects.get(email=os.environ["RP_ACTOR"])
rc = ReleaseCandidate.objects.get(name=os.environ["RP_RC"])
cases = list(TestCase.objects.filter(key__startswith=os.environ["RP_PREFIX"]))
rng = random.Random(os.getpid())
print("ready", flush=True)
for n in range(int(os.environ["RP_RUNS"])):
    services.test_run_record(case=rng.choice(cases), release_candidate=rc, status=rng.choice(["pass", "fail"]),
                             actor=actor)
print("done", flush=True)
"""


def _writer_process(*, prefix: str, rc, actor, runs: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
        "MONGODB_NAME": connection.settings_dict["NAME"],
        "RP_ACTOR": actor.email,
        "RP_RC": rc.name,
        "RP_PREFIX": prefix,
        "RP_RUNS": str(runs),
    }
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )


@pytest.mark.django_db(transaction=True)
def test_writers_in_separate_processes_share_nothing_but_the_rc(make_case, make_rc, reviewer):
    rc = make_rc()
    for process_index in range(3):
        for index in range(4):
            make_case(key=f"P{process_index}-{index}", owner=f"o{index}")
    processes = [_writer_process(prefix=f"P{index}-", rc=rc, actor=reviewer, runs=15) for index in range(3)]
    outputs = [process.communicate(timeout=240)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert TestRun.objects.filter(release_candidate=rc).count() == 45
    _one_latest_per_pair()
    assert _summary_counts() == _raw_counts()
    assert AuditEvent.objects.filter(action="run.record").count() == 45


@pytest.mark.django_db(transaction=True)
def test_a_writer_killed_at_any_moment_leaves_runs_deltas_and_events_consistent(make_case, make_rc, reviewer):
    rc = make_rc()
    for index in range(6):
        make_case(key=f"K-{index}", owner=f"o{index % 2}")
    process = _writer_process(prefix="K-", rc=rc, actor=reviewer, runs=100_000)
    assert process.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while TestRun.objects.filter(release_candidate=rc).count() < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # wherever it is: inside a transaction, between two, mid-commit
    process.wait(timeout=30)
    # A server ends a dead client's open transaction (mongod after transactionLifetimeLimitSeconds, 60 s; the
    # stand-in only when a later transactional statement finds it idle that long). End it now, as an operator
    # would, instead of waiting a minute: its writes are rolled back, never half-committed.
    connection.connection.admin.command("killAllSessions", [])
    stored = TestRun.objects.filter(release_candidate=rc).count()
    assert stored >= 10
    _one_latest_per_pair()
    assert _summary_counts() == _raw_counts()
    # Each stored run has its event: the run and its audit event were one transaction.
    assert (
        AuditEvent.objects.filter(action="run.record").count() == TestRun.objects.filter(release_candidate=rc).count()
    )

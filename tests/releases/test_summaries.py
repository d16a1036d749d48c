"""Summary documents equal a raw aggregation of the runs after any sequence of writes; rebuild; real indexes."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from releases import services
from releases.models import QualitySummary, TestCase, TestRun

pytestmark = pytest.mark.django_db


def _raw_counts() -> Counter:
    """The truth, straight from the runs: latest run per (case, RC) of active cases, per dimension."""
    deleted = set(TestCase.objects.filter(is_deleted=True).values_list("pk", flat=True))
    counts: Counter = Counter()
    pipeline = [
        {"$match": {"is_latest": True}},
        {
            "$group": {
                "_id": {
                    "r": "$release_candidate_id",
                    "s": "$suite_id",
                    "o": "$owner",
                    "c": "$category",
                    "t": "$status",
                    "case": "$case_id",
                },
                "n": {"$sum": 1},
            }
        },
    ]
    for row in connection.database["testRuns"].aggregate(pipeline):
        key = row["_id"]
        assert row["n"] == 1, "more than one latest run for a (case, RC)"
        if key["case"] in deleted:
            continue
        for dimension, value in (("all", ""), ("owner", key["o"]), ("category", key["c"])):
            counts[(key["r"], key["s"], dimension, value, key["t"])] += 1
    return counts


def _summary_counts() -> Counter:
    counts: Counter = Counter()
    for row in QualitySummary.objects.all():
        for status in ("pass", "fail", "pending"):
            value = getattr(row, f"{status}_count")
            assert value >= 0
            if value:
                counts[(row.release_candidate_id, row.suite_id, row.dimension, row.key, status)] += value
    return counts


def test_it_keeps_summaries_equal_to_a_raw_aggregation_after_random_writes(
    make_case, make_rc, reviewer, admin_user, suite
):
    rng = random.Random(20261125)
    other_suite = services.suite_create(name="Search", product="Web Shop", actor=reviewer)
    rcs = [make_rc() for _ in range(3)]
    cases = [
        make_case(suite=rng.choice([suite, other_suite]), owner=rng.choice("abc"), category=rng.choice("xyz"))
        for _ in range(8)
    ]
    now = timezone.now()
    operations = Counter()
    for step in range(90):
        case = TestCase.objects.get(pk=rng.choice(cases).pk)
        roll = rng.random()
        if roll < 0.6:
            if case.is_deleted:
                continue
            back = timedelta(minutes=rng.randint(0, 600)) if rng.random() < 0.2 else timedelta(0)
            services.test_run_record(
                case=case,
                release_candidate=rng.choice(rcs),
                status=rng.choice(["pass", "fail", "pending"]),
                executed_at=now - back + timedelta(milliseconds=step),
                actor=reviewer,
            )
            operations["record"] += 1
        elif roll < 0.75:
            if case.is_deleted:
                continue
            services.case_update(case=case, owner=rng.choice("abcd"), category=rng.choice("xyzw"), actor=reviewer)
            operations["edit"] += 1
        elif roll < 0.88:
            if case.is_deleted:
                continue
            services.case_delete(case=case, actor=admin_user)
            operations["delete"] += 1
        else:
            if not case.is_deleted:
                continue
            services.case_restore(case=case, actor=admin_user)
            operations["restore"] += 1
        if step % 30 == 0:
            assert _summary_counts() == _raw_counts()
    assert min(operations.values()) > 0 and len(operations) == 4
    assert _summary_counts() == _raw_counts()
    incremental = _summary_counts()
    services.summaries_rebuild()
    assert _summary_counts() == incremental


def test_it_rebuilds_summaries_and_repairs_duplicate_latest_flags(make_case, make_rc, record, suite):
    rc, other = make_rc(), make_rc()
    case = make_case()
    record(case, rc, "fail")
    record(case, other, "pass")
    newest = timezone.now().replace(microsecond=0)
    # A bulk writer (e.g. an import) appends two runs marked latest without unmarking the old one.
    connection.database["testRuns"].insert_many(
        [
            {
                "case_id": case.pk,
                "release_candidate_id": rc.pk,
                "suite_id": suite.pk,
                "status": status,
                "owner": case.owner,
                "category": case.category,
                "is_latest": True,
                "mantis_ids": [],
                "notes": "",
                "executed_at": newest + timedelta(seconds=offset),
                "created_at": newest,
                "executed_by_id": None,
            }
            for status, offset in (("pending", 1), ("pass", 2))
        ]
    )
    QualitySummary.objects.filter(release_candidate=other).update(pass_count=99)
    services.summaries_rebuild(release_candidate_ids=[str(rc.pk)])
    latest = TestRun.objects.get(case=case, release_candidate=rc, is_latest=True)
    assert latest.status == "pass"
    assert _summary_counts() != _raw_counts()  # the other RC was not rebuilt
    call_command("rebuild_summaries", verbosity=0)
    assert _summary_counts() == _raw_counts()


def test_the_command_rejects_unknown_rcs(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("rebuild_summaries", "--rc", "nope", verbosity=0)


def test_the_blueprint_indexes_exist_in_mongodb(db):
    def keys(collection):
        return {
            tuple(name for name, _ in spec["key"])
            for spec in connection.database[collection].index_information().values()
        }

    runs = keys("testRuns")
    for expected in (
        ("release_candidate_id", "status"),
        ("owner", "release_candidate_id"),
        ("category", "release_candidate_id"),
        ("case_id", "release_candidate_id", "is_latest"),
        ("release_candidate_id", "suite_id", "is_latest"),
    ):
        # An index that starts with these keys answers what one of exactly these keys would (the blueprint's
        # (RC, status) is the start of the (RC, status, latest, key, case) index of the status pages).
        assert any(index[: len(expected)] == expected for index in runs), expected
    assert ("release_candidate_id", "dimension") in keys("qualitySummaries")
    assert ("release_candidate_id", "suite_id", "dimension", "key") in keys("qualitySummaries")
    assert ("suite_id", "key") in keys("testCases")


def test_seed_demo_leaves_summaries_equal_to_the_runs(db, capsys):
    call_command("seed_demo", "--cases-per-suite", "4")
    capsys.readouterr()
    assert QualitySummary.objects.exists()
    assert _summary_counts() == _raw_counts()

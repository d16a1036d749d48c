"""Find (and with --fix repair) releases data older versions left without a parent: cases whose suite is gone,
runs whose case, RC or suite is gone. Then rebuild the quality summaries from the runs that remain."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from django.core.management.base import BaseCommand
from django.db import connection

from audit.services import audit_record
from releases import selectors
from releases.models import TestSuite
from releases.services import summaries_rebuild

RECOVERED_PRODUCT = "(recovered)"


def _recovered_suite(old_suite_id: ObjectId) -> TestSuite:
    """The suite that takes in the cases of a suite that is gone: one per missing suite id, so the cases' keys stay
    unique within it, and running the repair again finds the same one."""
    suite, _ = TestSuite.objects.get_or_create(
        product=RECOVERED_PRODUCT,
        name=f"Recovered {old_suite_id}",
        defaults={"description": "Cases whose suite was gone, re-attached by manage.py releases_repair."},
    )
    return suite


def orphans_repair(found: dict[str, list[ObjectId]]) -> dict[str, int]:
    """Repair what `selectors.orphans_find` found; returns how many documents each step changed.

    - runs whose case or RC is gone are deleted (there is nothing to show them under);
    - cases whose suite is gone are re-attached to a "Recovered <old suite id>" suite of product "(recovered)",
      their runs' copied suite id with them (nothing of their history is lost; move or delete them from there);
    - runs whose copied suite id points at nothing get their case's suite id again.
    """
    database = connection.database
    cases, runs = database["testCases"], database["testRuns"]
    counts = {"runs_deleted": 0, "cases_reattached": 0, "runs_reattached": 0}
    doomed = list({*found["runs_without_case"], *found["runs_without_release_candidate"]})
    if doomed:
        counts["runs_deleted"] = runs.delete_many({"_id": {"$in": doomed}}).deleted_count
    if found["cases_without_suite"]:
        by_old_suite: dict[ObjectId, list[ObjectId]] = {}
        for document in cases.find({"_id": {"$in": found["cases_without_suite"]}}, {"suite_id": 1}):
            by_old_suite.setdefault(document["suite_id"], []).append(document["_id"])
        for old_suite_id, case_ids in by_old_suite.items():
            suite = _recovered_suite(old_suite_id)
            counts["cases_reattached"] += cases.update_many(
                {"_id": {"$in": case_ids}}, {"$set": {"suite_id": suite.pk}}
            ).modified_count
            counts["runs_reattached"] += runs.update_many(
                {"case_id": {"$in": case_ids}}, {"$set": {"suite_id": suite.pk}}
            ).modified_count
    deleted = set(doomed)
    stale = [run_id for run_id in found["runs_without_suite"] if run_id not in deleted]
    if stale:
        case_ids = runs.distinct("case_id", {"_id": {"$in": stale}, "suite_id": {"$nin": _suite_ids()}})
        for case in cases.find({"_id": {"$in": case_ids}}, {"suite_id": 1}):
            counts["runs_reattached"] += runs.update_many(
                {"_id": {"$in": stale}, "case_id": case["_id"]}, {"$set": {"suite_id": case["suite_id"]}}
            ).modified_count
    return counts


def _suite_ids() -> list[ObjectId]:
    return [document["_id"] for document in connection.database["testSuites"].find({}, {"_id": 1})]


class Command(BaseCommand):
    help = (
        "Find releases data left without a parent by older versions: cases whose suite is gone, runs whose case, "
        "RC or suite is gone; print the counts. With --fix: delete runs whose case or RC is gone, re-attach cases "
        "whose suite is gone to a 'Recovered <old suite id>' suite of product '(recovered)' (with their runs), "
        "give runs whose suite copy is gone their case's suite again, then rebuild the quality summaries. "
        "Without --fix nothing is written. Exit status 0 either way."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Repair what was found (default: only report).")

    def handle(self, *args, **options):
        found = selectors.orphans_find()
        for name, ids in found.items():
            self.stdout.write(f"{name.replace('_', ' ')}: {len(ids)}")
        if not options["fix"]:
            if any(found.values()):
                self.stdout.write("Run again with --fix to repair them.")
            return
        counts: dict[str, Any] = orphans_repair(found)
        summaries_rebuild(release_candidate_ids=None)
        audit_record(
            action="releases.repair",
            resource="releases",
            actor_email="manage.py releases_repair",
            metadata={"found": {name: len(ids) for name, ids in found.items()}, **counts},
        )
        for name, value in counts.items():
            self.stdout.write(f"{name.replace('_', ' ')}: {value}")
        self.stdout.write(self.style.SUCCESS("Repaired; quality summaries rebuilt."))

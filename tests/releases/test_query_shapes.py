"""Hot write paths ask only what a real MongoDB answers from an index.

Every query the API makes while recording a run, bulk-recording, editing a case or appending an audit event is
captured at the driver and checked against the collection's declared indexes: its filter must pin the first key of
some index (by equality or `$in`), so its cost is a point lookup whatever the size of the collection. The stand-in
server has no query planner to ask (`explain`), so the check is done on the query shapes themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.client import RequestFactory
from pymongo.collection import Collection

from audit.services import audit_record
from releases import services
from releases.models import TestCase
from report_platform import standin_compat

pytestmark = pytest.mark.django_db

_READ_AND_WRITE = (
    "find",
    "find_one",
    "aggregate",
    "update_one",
    "update_many",
    "find_one_and_update",
    "delete_one",
    "delete_many",
    "count_documents",
    "distinct",
)
_UNFILTERED_OK = {
    # Collections a hot path may read without a filter because they hold at most a few rows by design.
    "django_content_type",
}


_INSERTS = ("insert_one", "insert_many", "bulk_write")


@contextmanager
def captured(methods: tuple[str, ...] = _READ_AND_WRITE) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    originals = {name: getattr(Collection, name) for name in methods}

    def wrapper(name):
        original = originals[name]

        def method(self, *args, **kwargs):
            first = args[0] if args else kwargs.get("filter", kwargs.get("pipeline", {}))
            if name == "aggregate":
                # A pipeline that does not start with $match (a $lookup first, say) reads every document.
                starts = first[0] if first else {}
                first = starts["$match"] if "$match" in starts else {"$pipeline": str(first)[:300]}
            elif name == "distinct":
                first = args[1] if len(args) > 1 else kwargs.get("filter", {})
            elif name in _INSERTS:
                first = {}
            calls.append((self.name, name, first or {}))
            return original(self, *args, **kwargs)

        return method

    for name in methods:
        setattr(Collection, name, wrapper(name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(Collection, name, original)


def _pinned_fields(query: dict[str, Any]) -> set[str]:
    """Fields a filter pins to one value or a finite list of values (usable as an index prefix)."""
    fields: set[str] = set()
    for key, value in query.items():
        if key == "$and":
            for part in value:
                fields |= _pinned_fields(part)
        elif key == "$expr" and isinstance(value, dict) and "$eq" in value:
            left, _right = value["$eq"]
            if isinstance(left, str) and left.startswith("$"):
                fields.add(left[1:])
        elif not key.startswith("$") and (not isinstance(value, dict) or set(value) & {"$eq", "$in"}):
            fields.add(key)
    return fields


def _index_prefixes(name: str) -> set[str]:
    return {spec["key"][0][0] for spec in connection.database[name].index_information().values()}


def _standin_scans(collection: str, method: str, query: dict[str, Any]) -> bool:
    """The embedded stand-in's own access path (report_platform/standin_compat.py, workaround 4): after the
    workaround's rewrite, the filter's FIRST key must be pinned and lead an index; any top-level operator
    (`$or`, `$and`, `$expr`) and every findAndModify is a scan of the collection."""
    if method == "find_one_and_update":
        return True
    sent = standin_compat.index_friendly_filter(query, frozenset(_index_prefixes(collection)))
    if not sent:
        return True
    first = next(iter(sent))
    return first.startswith("$") or first not in _pinned_fields({first: sent[first]}) & _index_prefixes(collection)


def _standin_bound(collection: str, query: dict[str, Any]) -> tuple[str, ...]:
    """The index keys the stand-in narrows a find by: along an index's keys while the filter pins each by plain
    equality; an `$in` bounds its own key only (the first), so the rest of the index is not used."""
    best: tuple[str, ...] = ()
    for spec in connection.database[collection].index_information().values():
        bound: list[str] = []
        for key, _direction in spec["key"]:
            value = query.get(key, {"$exists": True})
            if isinstance(value, dict) and set(value) == {"$in"} and not bound:
                bound.append(key)
                break
            if isinstance(value, dict):
                break
            bound.append(key)
        best = max(best, tuple(bound), key=len)
    return best


def _assert_indexed(calls) -> None:
    problems = []
    for collection, method, query in calls:
        if collection in _UNFILTERED_OK:
            continue
        branches = query["$or"] if set(query) == {"$or"} else [query]
        for branch in branches:
            if not _pinned_fields(branch) & _index_prefixes(collection):
                problems.append(f"{collection}.{method}({json.dumps(branch, default=str)[:200]})")
        if _standin_scans(collection, method, query):
            problems.append(f"stand-in scan: {collection}.{method}({json.dumps(query, default=str)[:200]})")
    assert problems == [], "queries no index answers:\n" + "\n".join(problems)


def _api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _calls_of_a_second_record(client, case, rc) -> list[tuple[str, str, dict[str, Any]]]:
    """What the API asks while recording a run of a case that already has one in the RC."""
    client.post(f"/api/v1/tests/{case.pk}/runs", {"rc": rc.name, "status": "pass"}, content_type="application/json")
    with captured() as calls:
        response = client.post(
            f"/api/v1/tests/{case.pk}/runs", {"rc": rc.name, "status": "fail"}, content_type="application/json"
        )
    assert response.status_code == 201, response.content
    return calls


def test_recording_a_run_through_the_api_uses_only_indexed_queries(make_case, make_rc, reviewer):
    case, rc = make_case(), make_rc("2026.12-rc1")
    calls = _calls_of_a_second_record(_api(reviewer), case, rc)
    collections = {collection for collection, _, _ in calls}
    assert {"testCases", "testRuns"} <= collections
    _assert_indexed(calls)


def test_editing_a_case_through_the_api_uses_only_indexed_queries(make_case, reviewer):
    case = make_case()
    client = _api(reviewer)
    with captured() as calls:
        response = client.patch(f"/api/v1/tests/{case.pk}", {"task": "T-1"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert TestCase.objects.get(pk=case.pk).task == "T-1"
    _assert_indexed(calls)


def test_a_bulk_record_and_an_audit_append_use_only_indexed_queries(make_case, make_rc, reviewer):
    rc = make_rc()
    cases = [make_case() for _ in range(5)]
    with captured() as calls:
        services.test_run_bulk_record(cases=cases, release_candidate=rc, status="pass", actor=reviewer)
        audit_record(action="case.update", actor=reviewer, resource="case:x")
    _assert_indexed(calls)


def test_the_checker_itself_refuses_a_scan():
    """The check fails for a query no index answers (so the tests above can fail)."""
    with pytest.raises(AssertionError, match="queries no index answers"):
        _assert_indexed([("testRuns", "find", {"notes": "x"})])
    _assert_indexed([("testRuns", "find", {"case_id": {"$in": [1]}, "notes": "x"})])
    # What the stand-in scans although a real MongoDB would use an index: `$expr`, a top-level `$or`, any
    # findAndModify.
    for call in (
        ("testRuns", "find", {"$expr": {"$eq": ["$case_id", 1]}}),
        ("testCases", "find", {"$or": [{"_id": 1}, {"_id": 2}]}),
        ("testCases", "find_one_and_update", {"_id": 1}),
    ):
        with pytest.raises(AssertionError, match="stand-in scan"):
            _assert_indexed([call])
    # ... and what its workaround makes answerable: the backend's `$and` of plain conditions, `_id` moved first,
    # an unindexed condition moved behind an indexed one.
    _assert_indexed([("testCases", "find", {"$and": [{"is_deleted": False}, {"_id": 1}]})])
    _assert_indexed([("testRuns", "find", {"notes": "x", "case_id": 1})])


def test_recording_a_run_reads_the_latest_run_of_its_pair_not_the_case_history(make_case, make_rc, reviewer):
    """The previous latest run is looked up by case, RC and flag together, so a case run in many RCs (or many times
    in one) costs one index entry, not its history, on the stand-in too."""
    case, rc = make_case(), make_rc("2026.12-rc9")
    for number in range(3):
        older = make_rc(f"2026.11-rc{number}")
        services.test_run_bulk_record(cases=[case], release_candidate=older, status="pass", actor=reviewer)
    calls = _calls_of_a_second_record(_api(reviewer), case, rc)
    runs = [query for collection, method, query in calls if (collection, method) == ("testRuns", "find")]
    assert len(runs) == 1
    assert _standin_bound("testRuns", runs[0]) == ("case_id", "release_candidate_id", "is_latest"), runs[0]
    # The checker tells the two shapes apart: an `$in` on the case bounds the case alone.
    in_form = {"case_id": {"$in": [case.pk]}, "release_candidate_id": {"$in": [rc.pk]}, "is_latest": True}
    assert _standin_bound("testRuns", in_form) == ("case_id",)


def _calls_of_one_record_and_one_edit(client, case, rc) -> tuple[list, list]:
    with captured((*_READ_AND_WRITE, *_INSERTS)) as record:
        response = client.post(
            f"/api/v1/tests/{case.pk}/runs", {"rc": rc.name, "status": "fail"}, content_type="application/json"
        )
    assert response.status_code == 201, response.content
    with captured((*_READ_AND_WRITE, *_INSERTS)) as edit:
        response = client.patch(f"/api/v1/tests/{case.pk}", {"task": "T-2"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["suite_name"] == case.suite.name
    return [call[:2] for call in record], [call[:2] for call in edit]


def test_a_run_record_and_a_case_edit_cost_the_same_few_calls_whatever_the_data(make_case, make_rc, reviewer):
    """Each database call of the two hottest clicks is named here, and their number does not grow with the data:
    the same calls with one case and with 150 more cases and 300 more runs (a CI client with a JWT)."""
    from accounts.services import token_family_start

    rc = make_rc()
    access = token_family_start(user=reviewer, request=RequestFactory().post("/", HTTP_USER_AGENT="ci")).access
    client = Client(HTTP_AUTHORIZATION=f"Bearer {access}")
    first = make_case()
    services.test_run_bulk_record(cases=[first], release_candidate=rc, status="pass", actor=reviewer)
    small = _calls_of_one_record_and_one_edit(client, first, rc)
    more = [make_case() for _ in range(150)]
    for status in ("pass", "fail"):
        services.test_run_bulk_record(cases=more, release_candidate=rc, status=status, actor=reviewer)
    large = _calls_of_one_record_and_one_edit(client, more[75], rc)
    assert small == large
    record, edit = small
    # The token's family (revocation), the case with its suite (the RC must be of its product), the RC; then the
    # transaction: read the live case, bump it, read its latest run, unflag it, store the run, its summary delta
    # and its audit event.
    assert record == [
        ("tokenFamilies", "aggregate"),
        ("testCases", "aggregate"),
        ("testSuites", "aggregate"),
        ("releaseCandidates", "aggregate"),
        ("testCases", "find"),
        ("testCases", "update_many"),
        ("testRuns", "find"),
        ("testRuns", "update_many"),
        ("testRuns", "insert_many"),
        ("summaryDeltas", "insert_many"),
        ("auditInbox", "insert_one"),
    ], record
    # The case with its suite, the stored case the edit starts from, the update and its audit event.
    assert edit == [
        ("tokenFamilies", "aggregate"),
        ("testCases", "aggregate"),
        ("testSuites", "aggregate"),
        ("testCases", "aggregate"),
        ("testCases", "update_many"),
        ("auditInbox", "insert_one"),
    ], edit

"""The case list under sparse filters: every filter combination (status in RC included) pages through the same cases
in the same order as one sorted query would, and its queries read only the index entries of the filter's own cases.

The stand-in reads a find's whole index range, and narrows it along an index only in the shapes its planner knows
(`_standin_narrowing`, from secantus/storage.py `_try_index_id_keys` of 0.7.0b3): a filter of plain equalities that
are exactly an index's leading keys, or those equalities and ONE range / `$in` on the next key; anything else falls
back to the index of one field (every case of the owner, for each key window) or a scan. A real MongoDB plans the
same queries on the same indexes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from bson import ObjectId
from django.db import connection
from pymongo.collection import Collection

from releases import selectors, services
from releases.models import TestCase
from releases.selectors import CASE_SORTS, CaseFilters
from report_platform import standin_compat

pytestmark = pytest.mark.django_db

_RANGE_OPERATORS = {"$eq", "$gt", "$gte", "$lt", "$lte", "$in"}


def _narrowing(indexes: list[list[str]], query: dict[str, Any]) -> tuple[str, ...]:
    """The index keys the stand-in narrows a find by (() = it reads every document of the collection)."""
    if not query or any(name.startswith("$") for name in query):
        return ()
    if all(not isinstance(value, dict) for value in query.values()):
        covering = [index for index in indexes if set(index[: len(query)]) == set(query)]
        if covering:
            return tuple(min(covering, key=len)[: len(query)])
    operators = [name for name, value in query.items() if isinstance(value, dict)]
    if len(query) >= 2 and len(operators) == 1 and set(query[operators[0]]) <= _RANGE_OPERATORS:
        equal = set(query) - set(operators)
        for index in indexes:
            if len(index) > len(equal) and set(index[: len(equal)]) == equal and index[len(equal)] == operators[0]:
                return tuple(index[: len(equal) + 1])
    if len(query) == 1:
        name, value = next(iter(query.items()))
        if isinstance(value, dict) and not set(value) <= _RANGE_OPERATORS:
            return ()
        return (name,) if any(index[0] == name for index in indexes) else ()
    for name, value in query.items():  # one condition rides its index; the others are checked on each document
        narrowed = _narrowing(indexes, {name: value})
        if narrowed:
            return narrowed
    return ()


def _standin_narrowing(collection: str, query: dict[str, Any]) -> tuple[str, ...]:
    specs = connection.database[collection].index_information().values()
    indexes = [[key for key, _direction in spec["key"]] for spec in specs]
    sent = standin_compat.index_friendly_filter(query, frozenset(index[0] for index in indexes))
    return _narrowing(indexes, sent)


@contextmanager
def finds() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The (collection, filter) of every `find` made inside the block."""
    calls: list[tuple[str, dict[str, Any]]] = []
    original = Collection.find

    def find(self, *args, **kwargs):
        calls.append((self.name, dict(args[0] if args else kwargs.get("filter") or {})))
        return original(self, *args, **kwargs)

    Collection.find = find
    try:
        yield calls
    finally:
        Collection.find = original


def test_the_narrowing_model_tells_the_stand_ins_shapes_apart(db):
    """Known shapes of the stand-in's planner, so the tests below can fail."""
    suite, rc, case = ObjectId(), ObjectId(), ObjectId()
    window = {"$gte": "A", "$lt": "B"}
    cases = [
        # An extra condition (`is_deleted`) beside the index's equalities: the suite's index only.
        ({"suite_id": suite, "owner": "o", "is_deleted": False, "key": window}, ("suite_id",)),
        ({"suite_id": suite, "owner": "o", "key": window}, ("suite_id", "owner", "key")),
        ({"is_deleted": False, "key": window}, ("is_deleted", "key")),
        ({"owner": "o", "category": "c", "key": "K"}, ("owner", "category", "key")),
        ({"$or": [{"key": "a"}, {"title": "a"}], "owner": "o"}, ()),
        ({"_id": {"$in": [case]}, "is_deleted": False}, ("_id",)),
    ]
    for query, expected in cases:
        assert _standin_narrowing("testCases", query) == expected, query
    latest = {"release_candidate_id": rc, "is_latest": True, "case_id": {"$in": [case]}}
    assert _standin_narrowing("testRuns", latest) == ("release_candidate_id", "is_latest", "case_id")
    assert _standin_narrowing("testRuns", {"release_candidate_id": rc, "status": "fail", "is_latest": True}) == (
        "release_candidate_id",
        "status",
        "is_latest",
    )


@pytest.fixture
def desk(suite, reviewer, admin_user, make_rc):
    """~90 cases over two suites of "Web Shop" and one of another product, keys repeated across suites (ties broken
    by id), three owners, two categories, four priorities, four deleted; in one RC about a third pass, a fifth fail
    (some failed first and passed later), a tenth pending, the rest not run."""
    rng = random.Random(15)
    second = services.suite_create(name="Accounts", product="Web Shop", actor=reviewer)
    other = services.suite_create(name="Elsewhere", product="Other App", actor=reviewer)
    alphabet = ["A", "K", "Z", "a", "0", "9", "-", "é", "\U0001f600"]
    keys = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(45)})
    rows = []
    for number, key in enumerate(keys):
        for home in (suite, second, other)[: 1 + number % 3]:
            rows.append(
                TestCase(
                    suite=home,
                    key=key,
                    title=f"Case {key}",
                    category=rng.choice(["auth", "cart"]),
                    owner=rng.choice(["ann", "bob", "cy"]),
                    priority=rng.randint(1, 4),
                )
            )
    TestCase.objects.bulk_create(rows)
    cases = list(TestCase.objects.filter(suite__in=[suite, second]))
    rc = make_rc("2026.15-rc1")
    statuses = {case.pk: rng.choice(["pass", "pass", "pass", "fail", "fail", "pending", None]) for case in cases}
    for status in ("fail", "pass", "pending"):
        chosen = [case for case in cases if statuses[case.pk] == status]
        services.test_run_bulk_record(cases=chosen, release_candidate=rc, status=status, actor=reviewer)
    refailed = [case for case in cases if statuses[case.pk] == "pass"][:5]
    services.test_run_bulk_record(cases=refailed, release_candidate=rc, status="fail", actor=reviewer)
    services.test_run_bulk_record(cases=refailed, release_candidate=rc, status="pass", actor=reviewer)
    for case in cases[3:40:10]:
        services.case_delete(case=case, actor=admin_user)
    return {"suites": (suite, second, other), "rc": rc}


def _expected(filters: CaseFilters, sort: str) -> list[tuple[str, Any]]:
    """What one sorted query of every matching case returns, computed here from the raw documents."""
    database = connection.database
    latest = {
        run["case_id"]: run["status"]
        for run in database["testRuns"].find({"release_candidate_id": filters.release_candidate.pk, "is_latest": True})
    } if filters.release_candidate is not None else {}  # fmt: skip
    others = set(filters.other_products_suite_ids())
    matching = []
    for document in database["testCases"].find({}):
        checks = [
            filters.include_deleted or not document["is_deleted"],
            filters.suite is None or document["suite_id"] == filters.suite.pk,
            document["suite_id"] not in others,
            not filters.owner or document["owner"] == filters.owner,
            not filters.category or document["category"] == filters.category,
        ]
        if filters.status == "not_run":
            checks.append(document["_id"] not in latest)
        elif filters.status:
            checks.append(latest.get(document["_id"]) == filters.status)
        if all(checks):
            matching.append(document)
    field_name, descending = CASE_SORTS[sort]

    def order(document):
        value = document[field_name]
        return (value.encode() if isinstance(value, str) else value), document["_id"].binary

    matching.sort(key=order, reverse=descending)
    return [(document["key"], document["_id"]) for document in matching]


def _paged(filters: CaseFilters, sort: str, limit: int) -> list[tuple[str, Any]]:
    seen, cursor = [], None
    for _ in range(500):
        page = selectors.case_list(filters=filters, sort=sort, cursor=cursor, limit=limit)
        seen += [(row["case"].key, row["case"].pk) for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("the pages did not end")


def _filter_sets(desk) -> list[dict[str, Any]]:
    suite, second, _other = desk["suites"]
    return [
        {},
        {"product": "Web Shop"},
        {"suite": suite},
        {"suite": second, "owner": "bob"},
        {"suite": suite, "category": "cart"},
        {"owner": "ann"},
        {"category": "auth", "product": "Web Shop"},
        {"suite": suite, "owner": "ann", "category": "auth"},
        {"owner": "bob", "include_deleted": True},
    ]


@pytest.mark.parametrize("mode", ["as configured", "dense"])
def test_every_filter_combination_pages_through_the_cases_of_one_sorted_query(desk, monkeypatch, mode):
    sorts = (("key", (4, 50)), ("-priority", (4,)), ("-key", (50,)), ("updated", (50,)))
    if mode == "dense":  # every status is read by the dense examination, in chunks of 5, 12 cases a page
        monkeypatch.setattr(selectors, "STATUS_IN_MAX", 0)
        monkeypatch.setattr(selectors, "STATUS_SCAN_CHUNK", 5)
        monkeypatch.setattr(selectors, "STATUS_SCAN_BUDGET", 12)
        sorts = (("key", (4,)), ("-priority", (7,)))
    rc = desk["rc"]
    for spec in _filter_sets(desk):
        for status in ("", "pass", "fail", "not_run"):
            filters = CaseFilters(**spec, status=status, release_candidate=rc)
            for sort, limits in sorts:
                expected = _expected(filters, sort)
                for limit in limits:
                    assert _paged(filters, sort, limit) == expected, (spec, status, sort, limit)
            capped = selectors.cases_matching(filters=filters, cap=5)
            assert [(case.key, case.pk) for case in capped] == _expected(filters, "key")[:5], (spec, status)


def test_a_filtered_key_page_reads_the_index_entries_of_its_own_filter(desk, monkeypatch):
    """Each key window of a suite / owner / category filter is read through the index that starts with exactly those
    fields (not the suite's or the owner's every case, nor every live case), and a status page reads the latest runs
    of its cases one index entry each."""
    monkeypatch.setattr(selectors, "STATUS_IN_MAX", 0)  # "pass" too is examined in key order
    suite, second, _other = desk["suites"]
    rc = desk["rc"]
    selectors.key_floor()  # cached: its own query is not a page's
    pinned = {
        ("suite_id", "owner", "key"): {"suite": second, "owner": "bob"},
        ("suite_id", "category", "key"): {"suite": suite, "category": "cart"},
        ("owner", "category", "key"): {"owner": "cy", "category": "cart", "product": "Web Shop"},
        ("suite_id", "key"): {"suite": suite},
        ("owner", "key"): {"owner": "ann", "include_deleted": True},
        ("category", "key"): {"category": "auth"},
        # The other product's suites left out: the live cases' index (not every live case per window by the flag).
        ("is_deleted", "key"): {"product": "Web Shop"},
    }
    for expected, spec in pinned.items():
        # A product's "pass" reads its latest runs in key order instead (the next test).
        for status in ("", "not_run") if spec == {"product": "Web Shop"} else ("", "pass", "not_run"):
            with finds() as calls:
                page = selectors.case_list(filters=CaseFilters(**spec, status=status, release_candidate=rc), limit=3)
                selectors.case_list(filters=page.filters, cursor=page.next_cursor, limit=3)
            read = [_standin_narrowing(name, query) for name, query in calls if name == "testCases"]
            assert read and set(read) == {expected}, (spec, status, read)
            runs = {_standin_narrowing(name, query) for name, query in calls if name == "testRuns"}
            assert runs <= {("release_candidate_id", "is_latest", "case_id")}, (spec, status, runs)


@pytest.mark.parametrize("spec", [{}, {"product": "Web Shop"}, {"include_deleted": True}])
def test_a_dense_status_in_key_order_reads_its_latest_runs_in_key_order_then_the_pages_cases(desk, monkeypatch, spec):
    """Without a suite, owner or category filter a dense status page reads the RC's latest runs with that status from
    the (RC, status, latest, key, case) index, about as many as the page shows, and then those runs' cases by id."""
    monkeypatch.setattr(selectors, "STATUS_IN_MAX", 0)
    rc = desk["rc"]
    selectors.key_floor()
    filters = CaseFilters(**spec, status="pass", release_candidate=rc)
    expected = _expected(filters, "key")
    assert len(expected) > 9
    cursor, seen = None, []
    while True:
        with finds() as calls:
            page = selectors.case_list(filters=filters, cursor=cursor, limit=3)
        seen += [(row["case"].key, row["case"].pk) for row in page.rows]
        runs = [(query, _standin_narrowing(name, query)) for name, query in calls if name == "testRuns"]
        walked = [query for query, narrowed in runs if narrowed[:3] == ("release_candidate_id", "status", "is_latest")]
        assert {narrowed for _query, narrowed in runs} <= {
            ("release_candidate_id", "status", "is_latest", "case_key"),
            ("release_candidate_id", "status", "is_latest", "case_key", "case_id"),
            ("release_candidate_id", "is_latest", "case_id"),  # the page's rows: each case's latest run
        }, runs
        assert walked and all(query["status"] == "pass" and query["is_latest"] is True for query in walked)
        cases = [query for name, query in calls if name == "testCases"]
        assert {_standin_narrowing("testCases", query) for query in cases} == {("_id",)}, cases
        # The page's cases (and one more, which tells a next page exists), plus a deleted case or another
        # product's at most.
        assert sum(len(query["_id"]["$in"]) for query in cases) <= 3 + 1 + 4, cases
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


def test_a_case_whose_key_changes_moves_to_its_new_place_in_a_status_page(desk, monkeypatch, reviewer):
    """The key copied onto the runs follows the case's: after an edit the case is listed at its new key."""
    monkeypatch.setattr(selectors, "STATUS_IN_MAX", 0)
    rc = desk["rc"]
    filters = CaseFilters(status="fail", release_candidate=rc)
    first = selectors.case_list(filters=filters, limit=1).rows[0]["case"]
    services.case_update(case=first, actor=reviewer, key="zz-moved")
    assert set(connection.database["testRuns"].distinct("case_key", {"case_id": first.pk})) == {"zz-moved"}
    listed = _paged(filters, "key", 4)
    assert listed == _expected(filters, "key") and listed.index(("zz-moved", first.pk)) > 0


def test_a_sparse_status_reads_its_latest_runs_and_then_its_cases_by_id(desk):
    """By id; in priority order one priority at a time (the live cases' priority index narrowed to the ids), stopping
    at the priority that fills the page."""
    suite, _second, _other = desk["suites"]
    rc = desk["rc"]
    by_priority = ("is_deleted", "priority", "_id")
    for spec, runs_read in (
        ({}, ("release_candidate_id", "status", "is_latest")),
        ({"suite": suite}, ("release_candidate_id", "status", "is_latest", "suite_id")),
    ):
        for sort, cases_read in (("-priority", by_priority), ("priority", by_priority), ("key", ("_id",))):
            with finds() as calls:
                page = selectors.case_list(
                    filters=CaseFilters(**spec, status="pending", release_candidate=rc), sort=sort, limit=2
                )
            assert page.rows
            runs = [_standin_narrowing(name, query) for name, query in calls if name == "testRuns"]
            assert runs[0] == runs_read and set(runs[1:]) == {("release_candidate_id", "is_latest", "case_id")}, runs
            cases = [(_standin_narrowing(name, query), query) for name, query in calls if name == "testCases"]
            assert {narrowed for narrowed, _query in cases} == {cases_read}, (sort, cases)
            if sort != "key":  # the priorities up to that of the case after the page (it tells a next page exists)
                order = [1, 2, 3, 4] if sort == "-priority" else [4, 3, 2, 1]
                wanted = [pk for _key, pk in _expected(page.filters, sort)[:3]]
                last = max(order.index(case.priority) for case in TestCase.objects.filter(pk__in=wanted))
                read = [query["priority"] for _narrowed, query in cases]
                assert sorted(set(read), key=order.index) == order[: last + 1] and last < 3, (sort, read)


def test_the_check_of_the_unpinned_conditions_matches_as_the_server_does(db):
    """The conditions a pinned read checks on each document mean what they mean to the server: booleans against
    booleans only, null against a missing field, `$in` / `$nin` on ObjectIds."""
    collection = connection.database["caseListCheckProbe"]
    one, two = ObjectId(), ObjectId()
    documents = [
        {"_id": 1, "is_deleted": False, "suite_id": one, "owner": "ann"},
        {"_id": 2, "is_deleted": True, "suite_id": two, "owner": "bob"},
        {"_id": 3, "is_deleted": 0, "suite_id": None},
        {"_id": 4, "owner": "ann"},
    ]
    collection.insert_many(documents)
    try:
        for conditions in (
            {"is_deleted": False},
            {"is_deleted": False, "owner": "ann"},
            {"suite_id": {"$nin": [two]}},
            {"suite_id": {"$nin": [None]}},
            {"suite_id": {"$in": [one, None]}},
            {"owner": None},
        ):
            keep = selectors._document_check(conditions)
            assert [d["_id"] for d in documents if keep(d)] == sorted(d["_id"] for d in collection.find(conditions))
        assert selectors._document_check({"$or": [{"owner": "ann"}]}) is None
        assert selectors._document_check({"owner": {"$regex": "a"}}) is None
    finally:
        collection.drop()

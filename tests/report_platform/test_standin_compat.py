"""Each stand-in workaround: the correct MongoDB behaviour (holds through the workaround, and on a real MongoDB),
and a probe that tells when the stand-in is fixed so report_platform/standin_compat.py can lose that piece."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import connection

from report_platform import standin_compat


def test_it_flattens_nested_inclusion_specs_to_dotted_paths():
    assert standin_compat.flatten_projection({"a": {"b": 1, "c": {"d": "$x"}}, "e": {"$add": [1, 2]}}) == {
        "a.b": 1,
        "a.c.d": "$x",
        "e": {"$add": [1, 2]},
    }


def test_it_rewrites_project_stages_inside_lookup_and_facet():
    pipeline = [
        {"$match": {"a": 1}},
        {"$lookup": {"from": "x", "as": "y", "pipeline": [{"$project": {"p": {"q": 1}}}]}},
        {"$facet": {"one": [{"$project": {"r": {"s": 1}}}]}},
    ]
    rewritten = standin_compat.rewrite_pipeline(pipeline)
    assert rewritten[0] == {"$match": {"a": 1}}
    assert rewritten[1]["$lookup"]["pipeline"] == [{"$project": {"p.q": 1}}]
    assert rewritten[2]["$facet"]["one"] == [{"$project": {"r.s": 1}}]


@pytest.mark.django_db
def test_nested_project_returns_the_field_not_the_spec():
    """Correct MongoDB behaviour for workaround 1 (passes on a real MongoDB, and on the stand-in with it)."""
    collection = connection.database["standin_probe"]
    collection.insert_one({"a": {"b": "value-of-b", "c": 3}})
    result = list(collection.aggregate([{"$project": {"_id": 0, "a": {"b": 1}}}]))
    assert result == [{"a": {"b": "value-of-b"}}]


@pytest.mark.django_db
def test_group_permissions_work_through_the_orm(make_user):
    """Django's group-permission lookup (values_list across a foreign key) must see the group's permission."""
    user = make_user("viewer")
    group = Group.objects.create(name="editors")
    permission = Permission.objects.get(codename="view_group")
    group.permissions.add(permission)
    user.groups.add(group)
    user = type(user).objects.get(pk=user.pk)
    assert user.has_perm("auth.view_group")
    assert user.get_group_permissions() == {"auth.view_group"}


@pytest.mark.django_db
def test_probe_standin_still_returns_the_literal_spec():
    """When this fails, the stand-in is fixed: delete workaround 1 from report_platform/standin_compat.py.
    Against a real MongoDB the workaround must not be installed at all."""
    if not settings.MONGODB_STANDIN:
        assert standin_compat.Collection.aggregate is standin_compat._original_aggregate
        return
    collection = connection.database["standin_probe"]
    collection.insert_one({"a": {"b": "value-of-b"}})
    raw = list(standin_compat._original_aggregate(collection, [{"$project": {"_id": 0, "a": {"b": 1}}}]))
    assert raw == [{"a": {"b": 1}}]


@pytest.mark.django_db
def test_count_never_emits_union_with_documents(make_user):
    """Workaround 2 is unnecessary on backend 5.2.x: `count()` must not emit `$unionWith` + `$documents`."""
    from accounts.models import User

    make_user("viewer")
    pipelines = []
    original = standin_compat.Collection.aggregate

    def spy(self, pipeline, *args, **kwargs):
        pipelines.append(pipeline)
        return original(self, pipeline, *args, **kwargs)

    standin_compat.Collection.aggregate = spy
    try:
        assert User.objects.count() == 1
        assert User.objects.filter(role="viewer").count() == 1
    finally:
        standin_compat.Collection.aggregate = original
    assert pipelines, "count() should aggregate"
    assert "$unionWith" not in repr(pipelines)


@pytest.mark.django_db
def test_add_fields_merges_into_an_embedded_document():
    """Correct MongoDB behaviour for workaround 3: `$addFields` with an embedded-document spec merges."""
    collection = connection.database["standin_probe"]
    collection.insert_one({"_id": 1, "a": {"_id": 7, "b": 2, "c": 3}})
    result = list(collection.aggregate([{"$addFields": {"a": {"b": "$a.b"}}}]))
    assert result == [{"_id": 1, "a": {"_id": 7, "b": 2, "c": 3}}]


@pytest.mark.django_db
def test_select_related_loads_the_joined_object():
    permission = Permission.objects.select_related("content_type").get(codename="view_group")
    assert permission.content_type.app_label == "auth"
    assert permission.content_type.pk is not None


@pytest.mark.django_db
def test_probe_standin_still_replaces_embedded_documents_in_add_fields():
    """When this fails, the stand-in is fixed: delete workaround 3 ($addFields/$set) from standin_compat.py."""
    if not settings.MONGODB_STANDIN:
        assert standin_compat.Collection.aggregate is standin_compat._original_aggregate
        return
    collection = connection.database["standin_probe"]
    collection.insert_one({"_id": 1, "a": {"_id": 7, "b": 2}})
    raw = list(standin_compat._original_aggregate(collection, [{"$addFields": {"a": {"b": "$a.b"}}}]))
    assert raw == [{"_id": 1, "a": {"b": 2}}]


def test_it_merges_a_top_level_and_of_plain_conditions_with_the_most_selective_first():
    leading = frozenset({"_id", "is_deleted", "suite_id", "session_key", "expire_date"})
    assert list(standin_compat.index_friendly_filter({"$and": [{"is_deleted": False}, {"_id": 7}]}, leading)) == [
        "_id",
        "is_deleted",
    ]
    session = {"$and": [{"expire_date": {"$gt": 1}}, {"session_key": "k"}]}
    assert list(standin_compat.index_friendly_filter(session, leading)) == ["session_key", "expire_date"]
    nested = {"$and": [{"$and": [{"notes": "x"}, {"suite_id": {"$in": [1]}}]}, {"is_deleted": False}]}
    assert list(standin_compat.index_friendly_filter(nested, leading)) == ["suite_id", "is_deleted", "notes"]
    # Among equality and `$in` conditions on indexed fields the caller's order stands (it knows which is selective).
    runs = frozenset({"case_id", "release_candidate_id", "is_latest"})
    wanted = {"case_id": {"$in": [1, 2]}, "release_candidate_id": 3, "is_latest": True}
    assert list(standin_compat.index_friendly_filter({"is_latest": True, **wanted}, runs)) == list(wanted)


def test_it_leaves_alone_what_merging_would_change():
    same_field = {"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 5}}]}
    with_or = {"$and": [{"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}]}
    with_expr = {"$expr": {"$eq": ["$a", 1]}}
    for query in (same_field, with_or, with_expr, {}):
        assert standin_compat.index_friendly_filter(query, frozenset({"a"})) == query


@pytest.mark.django_db
def test_merged_filters_find_exactly_what_the_and_finds():
    """Correct MongoDB behaviour for workaround 4: the merged filter is the same query (passes on a real MongoDB,
    where the workaround is not installed, and on the stand-in with it)."""
    collection = connection.database["standin_probe_and"]
    collection.create_index("suite_id")
    collection.insert_many(
        [{"_id": n, "suite_id": n % 3, "is_deleted": n % 2 == 0, "notes": f"n{n % 5}"} for n in range(60)]
    )
    queries = [
        {"$and": [{"is_deleted": False}, {"_id": 7}]},
        {"$and": [{"is_deleted": True}, {"suite_id": {"$in": [1, 2]}}, {"notes": "n4"}]},
        {"$and": [{"suite_id": 2}, {"_id": {"$gt": 30}}]},
    ]
    for query in queries:
        expected = sorted(
            document["_id"]
            for document in collection.find({}, {"_id": 1})
            if all(
                _matches(document["_id"], field, wanted)
                for condition in query["$and"]
                for field, wanted in condition.items()
            )
        )
        assert sorted(document["_id"] for document in collection.find(query)) == expected
        assert sorted(d["_id"] for d in collection.aggregate([{"$match": query}])) == expected
        assert collection.count_documents(query) == len(expected)
    assert (
        collection.update_many({"$and": [{"suite_id": 1}, {"is_deleted": True}]}, {"$set": {"x": 1}}).matched_count
        == 10
    )


def _matches(number: int, field: str, wanted) -> bool:
    value = {"_id": number, "suite_id": number % 3, "is_deleted": number % 2 == 0, "notes": f"n{number % 5}"}[field]
    if isinstance(wanted, dict):
        if "$in" in wanted:
            return value in wanted["$in"]
        return value > wanted["$gt"]
    return value == wanted

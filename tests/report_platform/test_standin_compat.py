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

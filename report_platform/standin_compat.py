"""Workarounds for known conformance bugs of the embedded MongoDB stand-in (SecantusDB 0.7.0b3).

Installed only when `settings.MONGODB_STANDIN` is true (no `MONGODB_URI`), never against a real MongoDB.
Each workaround has a test in tests/report_platform/test_standin_compat.py that shows the correct MongoDB
behaviour, and a probe that tells when the server is fixed so the workaround can be deleted.

1. `$project` with a nested inclusion spec (`{"a": {"b": 1}}`) returns the literal spec instead of the field.
   django-mongodb-backend emits it for `values()`/`values_list()` across a foreign key (Django's group-permission
   lookup hits it). Fix: flatten nested specs to dotted paths (`{"a.b": 1}`), which MongoDB defines as equivalent.
2. `$unionWith` with a `$documents` pipeline and no `coll`: emitted only by backend 6.x; 5.2.x (ours) does not,
   so there is nothing to work around (a test pins that our `count()` never emits it).
3. `$addFields`/`$set` with an embedded-document spec (`{"a": {"b": "$a.b"}}`) REPLACES the embedded document
   instead of merging into it as MongoDB documents. The backend emits it for `select_related()`, so the joined
   object lost its `_id` (`Permission.objects.select_related("content_type")` gave no content type; the Group
   admin's add page returned a 500). Fix: the same flattening to dotted paths, which MongoDB defines as equivalent.
   Found in this project; not listed in DESIGN.md.
4. The stand-in answers a filter from an index only when its FIRST key names the leading field of an index (and
   from the `_id` index only when `_id` comes first); a filter with a top-level `$and` is always a collection scan.
   The backend writes every multi-condition lookup as `{"$and": [{"is_deleted": False}, {"_id": X}]}`, so a point
   lookup of a case cost a scan of all cases (1.6 s at 20k cases; linear in the data). Fix: merge a top-level
   `$and` of plain conditions on distinct fields into one document (MongoDB defines the two as equivalent) and
   order its keys so the most selective indexed condition comes first: `_id`, then equality and `$in` in the
   caller's order, flags and ranges on fields that lead an index, then the rest (key order has no meaning to
   MongoDB). Applied to
   `aggregate`'s leading `$match`, `find`, `update_*`, `delete_*` and `count_documents`. Found in this project
   (issue 18); not listed in DESIGN.md. Still a scan on the stand-in, whatever the filter: `find_one_and_update`
   (`findAndModify`), which releases.store therefore does not use on growing collections.
"""

from __future__ import annotations

from typing import Any

from pymongo.collection import Collection

_original_aggregate = Collection.aggregate
_original_list_indexes = Collection.list_indexes
_FILTERED = ("find", "update_one", "update_many", "delete_one", "delete_many", "count_documents")
_originals = {name: getattr(Collection, name) for name in _FILTERED}
_installed = False


def _is_operator_document(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(str(key).startswith("$") for key in value)


def flatten_projection(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1, "c": "$x"}}` -> `{"a.b": 1, "a.c": "$x"}`; operator documents (`{"$add": ...}`) stay whole."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not _is_operator_document(value) and not str(key).startswith("$"):
            flat.update(flatten_projection(value, prefix=f"{path}."))
        else:
            flat[path] = value
    return flat


def rewrite_pipeline(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the pipeline with `$project`/`$addFields`/`$set` stages flattened, also in sub-pipelines."""
    rewritten = []
    for stage in pipeline:
        if not isinstance(stage, dict) or len(stage) != 1:
            rewritten.append(stage)
            continue
        ((operator, body),) = stage.items()
        if operator in ("$project", "$addFields", "$set") and isinstance(body, dict):
            rewritten.append({operator: flatten_projection(body)})
        elif operator in ("$lookup", "$unionWith") and isinstance(body, dict) and "pipeline" in body:
            rewritten.append({operator: {**body, "pipeline": rewrite_pipeline(body["pipeline"])}})
        elif operator == "$facet" and isinstance(body, dict):
            rewritten.append({"$facet": {name: rewrite_pipeline(sub) for name, sub in body.items()}})
        else:
            rewritten.append(stage)
    return rewritten


def _plain_conditions(value: Any) -> list[dict[str, Any]] | None:
    """The conditions of `{"$and": [...]}` as plain single-level documents, or None when any is not plain."""
    if not isinstance(value, list | tuple) or not value:
        return None
    conditions = []
    for condition in value:
        if not isinstance(condition, dict) or not condition:
            return None
        if "$and" in condition and len(condition) == 1:
            nested = _plain_conditions(condition["$and"])
            if nested is None:
                return None
            conditions.extend(nested)
        elif any(str(key).startswith("$") for key in condition):
            return None
        else:
            conditions.append(condition)
    return conditions


def index_friendly_filter(query: Any, leading: frozenset[str] = frozenset()) -> Any:
    """`{"$and": [{"a": 1}, {"_id": X}]}` -> `{"_id": X, "a": 1}` when every condition is a plain condition on a
    field no other condition names, keys in `_selectivity_rank` order (`leading`: the fields that lead an index of
    the collection); anything else is returned unchanged."""
    if not isinstance(query, dict) or not query or any(key.startswith("$") and key != "$and" for key in query):
        return query
    merged: dict[str, Any] = {}
    for key, value in query.items():
        if key == "$and":
            conditions = _plain_conditions(value)
            if conditions is None:
                return query
            for condition in conditions:
                for field, wanted in condition.items():
                    if field in merged or field in query:
                        return query  # two conditions on one field: merging would drop one
                    merged[field] = wanted
        elif key in merged:
            return query
        else:
            merged[key] = value
    return dict(sorted(merged.items(), key=lambda item: _selectivity_rank(item, leading)))


def _selectivity_rank(item: tuple[str, Any], leading: frozenset[str]) -> int:
    """The order the stand-in should meet the conditions in (it uses the first one's index): `_id`; then, on
    fields that lead an index, equality or `$in` on values in the caller's order (a caller names its most selective
    condition first, as it would write an index hint), equality on a flag (it matches half the collection), ranges;
    then conditions no index answers."""
    field, wanted = item
    if field == "_id":
        return 0
    if field not in leading:
        return 9
    if isinstance(wanted, bool) or (isinstance(wanted, dict) and isinstance(wanted.get("$eq"), bool)):
        return 3
    if not isinstance(wanted, dict) or set(wanted) <= {"$eq", "$in"}:
        return 1
    return 4


_leading_fields: dict[tuple[str, str], frozenset[str]] = {}


def leading_fields(collection: Collection) -> frozenset[str]:
    """The fields that lead an index of `collection`, read once per process (a stale answer only costs speed)."""
    key = (collection.database.name, collection.name)
    found = _leading_fields.get(key)
    if found is None:
        try:
            indexes = _original_list_indexes(collection)
            found = frozenset(next(iter(index["key"])) for index in indexes)
        except Exception:  # no such collection yet, or a transaction that cannot list: try again next time
            return frozenset()
        if found:
            _leading_fields[key] = found
    return found


def _friendly(collection: Collection, query: Any) -> Any:
    if not isinstance(query, dict) or not query:
        return query
    return index_friendly_filter(query, leading_fields(collection))


def _aggregate(self, pipeline, *args, **kwargs):
    pipeline = rewrite_pipeline(list(pipeline))
    if pipeline and isinstance(pipeline[0], dict) and set(pipeline[0]) == {"$match"}:
        pipeline = [{"$match": _friendly(self, pipeline[0]["$match"])}, *pipeline[1:]]
    return _original_aggregate(self, pipeline, *args, **kwargs)


def _with_friendly_filter(name: str):
    original = _originals[name]

    def method(self, filter=None, *args, **kwargs):
        if "filter" in kwargs:
            kwargs["filter"] = _friendly(self, kwargs["filter"])
            return original(self, *args, **kwargs)
        return original(self, _friendly(self, filter), *args, **kwargs)

    method.__name__ = name
    method.__doc__ = original.__doc__
    return method


def install() -> None:
    """Patch pymongo's `Collection.aggregate` (and the filtered methods, workaround 4) in this process
    (idempotent)."""
    global _installed
    if not _installed:
        Collection.aggregate = _aggregate
        for name in _FILTERED:
            setattr(Collection, name, _with_friendly_filter(name))
        _installed = True


def uninstall() -> None:
    global _installed
    Collection.aggregate = _original_aggregate
    for name, original in _originals.items():
        setattr(Collection, name, original)
    _installed = False

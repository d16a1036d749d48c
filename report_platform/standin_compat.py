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
"""

from __future__ import annotations

from typing import Any

from pymongo.collection import Collection

_original_aggregate = Collection.aggregate
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


def _aggregate(self, pipeline, *args, **kwargs):
    return _original_aggregate(self, rewrite_pipeline(list(pipeline)), *args, **kwargs)


def install() -> None:
    """Patch pymongo's `Collection.aggregate` in this process (idempotent)."""
    global _installed
    if not _installed:
        Collection.aggregate = _aggregate
        _installed = True


def uninstall() -> None:
    global _installed
    Collection.aggregate = _original_aggregate
    _installed = False

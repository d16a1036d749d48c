"""Workarounds for bugs of django-mongodb-backend itself (they apply on a real MongoDB too, unlike
report_platform/standin_compat.py). Installed by ReportPlatformConfig.ready(); each has a test in
tests/report_platform/test_backend_compat.py that fails once the backend is fixed and the workaround removed.

1. `iexact` does not escape regex characters (5.2.4). Django's base operations class binds
   `prep_for_iexact_query = prep_for_like_query` at class creation; the backend overrides `prep_for_like_query`
   (re.escape, for its `$regex` lookups) but not the alias, so `iexact` values go into `^...$` unescaped:
   `email__iexact=")"` is a server error (invalid regex) and `email__iexact="v.*@example.com"` matches other
   users' addresses (login and password reset look users up this way). Found by the API fuzzing.
"""

from __future__ import annotations

# Whether the installed backend still had the bug when `install` ran (the probe test asserts it).
iexact_unescaped_in_backend: bool | None = None


def install() -> None:
    global iexact_unescaped_in_backend
    from django_mongodb_backend.operations import DatabaseOperations

    if iexact_unescaped_in_backend is None:
        iexact_unescaped_in_backend = "prep_for_iexact_query" not in vars(DatabaseOperations)
    DatabaseOperations.prep_for_iexact_query = DatabaseOperations.prep_for_like_query

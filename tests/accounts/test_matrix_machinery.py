"""The route x role matrix test's own machinery: it sees every route, and a route left out of the tables fails."""

from __future__ import annotations

from tests.test_access_matrix import _entry, collect_routes, load_tables, missing_routes


def test_it_collects_pages_admin_and_each_api_operation_with_its_methods():
    routes = {(route.key, tuple(route.methods)) for route in collect_routes()}
    keys = {key for key, _ in routes}
    assert ("api:auth_login", ("POST",)) in routes and ("api:auth_me", ("GET",)) in routes
    assert {"accounts:security", "account_login", "mfa_activate_totp", "admin:index", "home"} <= keys
    paths = {route.key: route.path for route in collect_routes()}
    assert paths["accounts:user_role"] == "/account/users/5f00000000000000000000aa/role/"


def test_it_reports_a_route_missing_from_every_table():
    tables = load_tables()
    routes = collect_routes()
    assert not any(line.startswith('"accounts:') for line in missing_routes(routes, tables))
    del tables["accounts:security"]
    tables["api:auth_login"] = {"GET": "anonymous"}
    missing = missing_routes(routes, tables)
    assert any(line.startswith('"accounts:security"') for line in missing)
    assert any('"api:auth_login": {"POST": ...}' in line for line in missing)


def test_it_prefers_a_specific_entry_over_the_namespace_wildcard():
    tables = {"admin:*": {"GET": "admin"}, "admin:login": {"GET": "anonymous"}}
    assert _entry(tables, "admin:login") == {"GET": "anonymous"}
    assert _entry(tables, "admin:accounts_user_changelist") == {"GET": "admin"}
    assert _entry(tables, "releases:case_list") is None

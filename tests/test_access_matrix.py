"""C1: every URL pattern of the project (pages and each API operation) x {anonymous, viewer, reviewer, admin} x
methods, against the `ROUTES` tables in tests/<app>/routes.py.

- A route missing from every table fails the test (the message lists them, ready to paste into a table).
- Below the least role for a method: never 2xx (401/403/404/405 or a redirect to the login are fine).
- For every role and method: never 5xx.
- A page's GET/POST that its table entry does not list is held to the entry's strictest role (a read-only page
  answering POST like GET is harmless; an anonymous write through an unlisted method is not).
Path parameters get a non-existent ObjectId (or the first value that resolves to the same view), so an allowed role
may see 404: the check is about access control, not about content.
"""

from __future__ import annotations

import importlib.util
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import close_old_connections
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from report_platform.api import api

ROLES = ["anonymous", "viewer", "reviewer", "admin"]
RANK = {role: rank for rank, role in enumerate(ROLES)}
MISSING_ID = "5f00000000000000000000aa"
REGEX_CANDIDATES = [MISSING_ID, "accounts", "x"]
CONVERTER_VALUES = {"int": "987654321", "uuid": "6f1c2b9e-0000-4000-8000-000000000000"}


@dataclass
class Route:
    key: str  # "<namespace>:<url_name>" (or "<namespace>:<unnamed:route>")
    path: str
    methods: list[str]
    api: bool


def load_tables() -> dict[str, dict[str, str]]:
    """Every tests/<app>/routes.py ROUTES table, merged."""
    tables: dict[str, dict[str, str]] = {}
    for file in sorted(Path(settings.BASE_DIR, "tests").glob("*/routes.py")):
        spec = importlib.util.spec_from_file_location(f"_routes_{file.parent.name}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for key, entry in module.ROUTES.items():
            tables.setdefault(key, {}).update(entry)
    return tables


def _fill(route: str, regex_value: str) -> str:
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<\w+>[^)]*\)", regex_value, route)  # regex groups first: they contain <name>
    route = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: CONVERTER_VALUES.get(m.group(1) or "str", MISSING_ID), route)
    return "/" + route.replace("\\", "")


def _concrete_path(route: str, callback) -> str | None:
    for candidate in REGEX_CANDIDATES:
        path = _fill(route, candidate)
        try:
            if resolve(path).func == callback:
                return path
        except Resolver404:
            continue
    return None


def _walk(resolver, prefix: str = "", namespace: str = ""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            child_ns = entry.namespace or ""
            full_ns = ":".join(part for part in (namespace, child_ns) if part)
            yield from _walk(entry, prefix + str(entry.pattern), full_ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), namespace, entry


def collect_routes() -> list[Route]:
    routes: list[Route] = []
    for route, namespace, pattern in _walk(get_resolver()):
        if getattr(pattern.callback, "__module__", "") == "ninja.operation":
            continue  # API operations are walked one by one below, with their own methods
        name = pattern.name or f"<unnamed:{route}>"
        key = f"{namespace}:{name}" if namespace else name
        path = _concrete_path(route, pattern.callback)
        assert path is not None, f"cannot build a URL for {key} ({route})"
        routes.append(Route(key=key, path=path, methods=[], api=False))

    api_prefix = "/" + str(next(p for p in get_resolver().url_patterns if getattr(p, "namespace", "") == "api").pattern)
    seen: set[tuple[str, str]] = set()
    for bound in api._get_bound_routers():
        for path, path_view in bound.path_operations.items():
            for operation in path_view.operations:
                url_name = getattr(operation, "url_name", "") or api.get_operation_url_name(
                    operation, router=bound.template
                )
                route = (bound.prefix.strip("/") + "/" + path.lstrip("/")).lstrip("/")
                route = re.sub(r"\{(?:\w+:)?(\w+)\}", r"<\1>", route)
                concrete = api_prefix.rstrip("/") + _fill(route, MISSING_ID)
                for method in operation.methods:
                    if (url_name, method) in seen:
                        continue
                    seen.add((url_name, method))
                    routes.append(Route(key=f"api:{url_name}", path=concrete, methods=[method], api=True))
    return routes


def _entry(tables: dict, key: str) -> dict[str, str] | None:
    if key in tables:
        return tables[key]
    namespace = key.split(":", 1)[0] if ":" in key else None
    return tables.get(f"{namespace}:*") if namespace else None


def missing_routes(routes: list[Route], tables: dict[str, dict[str, str]]) -> list[str]:
    """Table lines to add: routes without an entry, and API methods the entry does not list."""
    missing: list[str] = []
    for route in routes:
        entry = _entry(tables, route.key)
        if entry is None:
            missing.append(f'"{route.key}": {{...}},  # {route.path} {",".join(route.methods) or "GET/POST"}')
        elif route.api:
            missing.extend(
                f'"{route.key}": {{"{m}": ...}}  # {route.path}: method {m} not in the table'
                for m in route.methods
                if m not in entry
            )
    return sorted(set(missing))


def _request(client: Client, method: str, path: str, api_route: bool):
    kwargs = {"content_type": "application/json", "data": "{}"} if api_route and method != "GET" else {}
    return getattr(client, method.lower())(path, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_it_checks_every_route_for_every_role_and_method(make_user):
    tables = load_tables()
    routes = collect_routes()

    missing = missing_routes(routes, tables)
    assert not missing, (
        "Routes missing from the ROUTES tables in tests/<app>/routes.py (add each with its least role per "
        "method):\n  " + "\n  ".join(missing)
    )

    users = {role: make_user(role) for role in ROLES[1:]}

    def walk_as(role: str) -> list[str]:
        """Every route and method as one role (one thread per role: the database is another process)."""
        client = Client(raise_request_exception=False)
        if role != "anonymous":
            client.force_login(users[role])
        found: list[str] = []
        try:
            for route in routes:
                entry = _entry(tables, route.key)
                methods = route.methods if route.api else sorted(set(entry) | {"GET", "POST"})
                strictest = max(entry.values(), key=RANK.__getitem__)
                for method in methods:
                    least = entry.get(method, strictest)
                    status = _request(client, method, route.path, route.api).status_code
                    where = f"{method} {route.path} [{route.key}] as {role}: {status}"
                    if status >= 500:
                        found.append(f"{where} (server error)")
                    elif 200 <= status < 300 and RANK[role] < RANK[least]:
                        found.append(f"{where} (least role {least})")
                    if role != "anonymous" and method != "GET" and "_auth_user_id" not in client.session:
                        client.force_login(users[role])  # the request logged this client out; sign in again
        finally:
            close_old_connections()
        return found

    with ThreadPoolExecutor(max_workers=len(ROLES)) as pool:
        violations = [line for lines in pool.map(walk_as, ROLES) for line in lines]
    assert not violations, "Access-control violations:\n  " + "\n  ".join(violations)

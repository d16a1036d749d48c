"""Test-wide fixtures.

The stand-in MongoDB and redis-server for the run are started by report_platform/settings/test.py (or taken from
MONGODB_URI / REDIS_URL). Here:
- pytest-django's guard against unmarked database access is restored (it never fires on this backend, because
  the backend reuses one cached MongoClient and never calls `ensure_connection` again);
- the per-test flush is replaced by deleting documents from the collections tests write, which keeps content
  types and permissions (Django's flush re-creates them after every test, ~190 ms each);
- the shared Redis cache (rate limits, lockouts) is cleared between tests.
"""

from __future__ import annotations

import os

import pytest
from django.test import TransactionTestCase
from django_mongodb_backend.base import DatabaseWrapper

# Playwright's sync API runs an event loop in the test thread; the ORM calls made around it are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

_KEEP_COLLECTIONS = {"django_migrations", "django_content_type", "auth_permission"}

_original_get_collection = DatabaseWrapper.get_collection
_original_get_database = DatabaseWrapper.get_database


def _guarded_get_collection(self, name, **kwargs):
    self.ensure_connection()  # pytest-django replaces this with a blocker outside django_db tests
    return _original_get_collection(self, name, **kwargs)


def _guarded_get_database(self):
    self.ensure_connection()
    return _original_get_database(self)


DatabaseWrapper.get_collection = _guarded_get_collection
DatabaseWrapper.get_database = _guarded_get_database


# Above this many documents a collection is dropped and its indexes made again (about 5 s for the 15 of the
# cases on the stand-in) instead of emptied document by document (about 1.2 ms a document: 12 s for a 10k import).
_DROP_ABOVE_DOCUMENTS = 4000


def _fast_fixture_teardown(self):
    from django.db import connections
    from pymongo import IndexModel

    for alias in self._databases_names(include_mirrors=False):
        connection = connections[alias]
        database = connection.database
        for spec in database.list_collections():
            name = spec["name"]
            if name in _KEEP_COLLECTIONS or name.startswith("system."):
                continue
            collection = database[name]
            if spec.get("options") or collection.estimated_document_count() <= _DROP_ABOVE_DOCUMENTS:
                collection.delete_many({})
                continue
            indexes = [
                IndexModel(index["key"], name=index_name, **{k: v for k, v in index.items() if k not in ("key", "v")})
                for index_name, index in collection.index_information().items()
                if index_name != "_id_"
            ]
            collection.drop()
            if indexes:
                database[name].create_indexes(indexes)


TransactionTestCase._fixture_teardown = _fast_fixture_teardown


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from ai_assist import post_call

    cache.clear()
    yield
    # The AI gateway's post-call round trip runs on a thread: it must land in this test's Redis, not the next one's.
    post_call.wait()


@pytest.fixture
def make_user(db):
    """Create a verified, active user with a role: `make_user("reviewer")`."""
    from allauth.account.models import EmailAddress

    from accounts.models import User

    counter = {"n": 0}

    def factory(role: str = "viewer", *, email: str | None = None, password: str = "correct-horse-battery-9", **extra):
        counter["n"] += 1
        email = email or f"{role}{counter['n']}@example.com"
        user = User.objects.create_user(email=email, password=password, role=role, verified=True, **extra)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        user.raw_password = password
        return user

    return factory


@pytest.fixture
def viewer(make_user):
    return make_user("viewer")


@pytest.fixture
def reviewer(make_user):
    return make_user("reviewer")


@pytest.fixture
def admin_user(make_user):
    return make_user("admin")


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real Celery worker process on the test Redis, using the test database. Yields the Popen."""
    import subprocess
    import sys
    import time

    from django.conf import settings
    from django.db import connection

    from report_platform.celery import app

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
        "MONGODB_NAME": connection.settings_dict["NAME"],
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "report_platform",
            "worker",
            "-l",
            "warning",
            "-c",
            "1",
            "-P",
            "prefork",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"test-{os.getpid()}@%h",
        ],
        cwd=settings.BASE_DIR,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5)
        if replies:
            break
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited with {process.returncode}")
    else:
        process.kill()
        raise RuntimeError("celery worker did not answer a ping within 30 s")
    yield process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser page that records console errors and CSP violations in `page.problems`."""
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.set_default_timeout(15_000)
    yield page
    context.close()


def browser_login(page, email: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_load_state()

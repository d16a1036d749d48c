"""The suite's own between-tests cleanup (tests/conftest.py): every collection a test wrote is empty afterwards and
keeps its indexes, whether it was emptied document by document or dropped and made again."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import TransactionTestCase

from tests import conftest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("documents", [10, conftest._DROP_ABOVE_DOCUMENTS + 1])
def test_the_cleanup_empties_a_collection_and_keeps_its_indexes(documents):
    database = connection.database
    collection = database["testCases"]
    before = collection.index_information()
    assert any(index.get("unique") and index.get("partialFilterExpression") for index in before.values())
    collection.insert_many([{"key": f"K-{number}", "n": number} for number in range(documents)], ordered=False)
    database["isolationProbe"].insert_one({"kept": False})

    class Probe(TransactionTestCase):
        databases = {"default"}

    Probe()._fixture_teardown()
    assert collection.estimated_document_count() == 0 and database["isolationProbe"].count_documents({}) == 0
    assert collection.index_information() == before
    assert database["django_migrations"].count_documents({}) > 0  # what every test keeps


_SERVICES_OF = """
import json, os
import pymongo, redis
from report_platform import embedded, observability
embedded.ensure_test_services()
observability.private_test_multiprocess_dir()
pymongo.MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=5000).admin.command("ping")
redis.Redis.from_url(os.environ["REDIS_URL"]).ping()
print(json.dumps({name: os.environ[name] for name in ("MONGODB_URI", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}))
"""


def test_each_pytest_worker_starts_services_of_its_own_and_its_subprocesses_share_them():
    """`make test` runs two pytest-xdist workers, which inherit their controller's environment: each starts its own
    stand-in, redis-server and metrics folder (its tests clear them), and the worker's own subprocesses (a Celery
    worker) keep using the worker's."""
    import json
    import os
    import subprocess
    import sys

    from django.conf import settings

    def services(**env: str) -> dict[str, str]:
        result = subprocess.run(
            [sys.executable, "-c", _SERVICES_OF],
            cwd=settings.BASE_DIR,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    here = {name: os.environ[name] for name in ("MONGODB_URI", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    assert services(PYTEST_XDIST_WORKER=worker) == here  # a subprocess of this worker
    other = services(PYTEST_XDIST_WORKER=f"{worker}-other")
    assert all(other[name] != here[name] for name in here), (other, here)

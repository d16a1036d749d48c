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

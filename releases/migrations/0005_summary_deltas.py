"""The summary outbox (`summaryDeltas`, releases.store): created up front, because a collection created implicitly
inside a transaction makes concurrent transactions abort with a write conflict."""

from django.db import migrations

COLLECTION = "summaryDeltas"
INDEX = "summarydelta_rc"


def create_outbox(apps, schema_editor):
    database = schema_editor.connection.database
    if COLLECTION not in database.list_collection_names():
        database.create_collection(COLLECTION)
    database[COLLECTION].create_index("release_candidate_id", name=INDEX)


def drop_outbox(apps, schema_editor):
    schema_editor.connection.database.drop_collection(COLLECTION)


class Migration(migrations.Migration):
    dependencies = [("releases", "0004_case_write_version")]

    operations = [migrations.RunPython(create_outbox, drop_outbox)]

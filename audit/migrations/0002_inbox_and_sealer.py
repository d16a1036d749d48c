"""The collections the sealer writes inside its transactions exist beforehand: creating a collection implicitly
inside a transaction conflicts (WriteConflict on the stand-in; refused by older MongoDB servers)."""

from django.db import migrations
from pymongo import ASCENDING


def create_collections(apps, schema_editor):
    database = schema_editor.connection.database
    existing = set(database.list_collection_names())
    for name in ("auditInbox", "auditChainHead", "auditSealerLease"):
        if name not in existing:
            database.create_collection(name)
    # The sealer takes the oldest events first.
    database["auditInbox"].create_index([("created_at", ASCENDING), ("_id", ASCENDING)], name="audit_inbox_order")


def drop_inbox(apps, schema_editor):
    database = schema_editor.connection.database
    if database["auditInbox"].estimated_document_count() == 0:
        database.drop_collection("auditInbox")
    database.drop_collection("auditSealerLease")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create_collections, drop_inbox)]

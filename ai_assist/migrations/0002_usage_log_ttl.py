"""TTL index: MongoDB deletes usage logs 90 days after `created_at` (blueprint: aiUsageLogs retention)."""

from django.conf import settings
from django.db import migrations

TTL_INDEX = "ailog_created_ttl"


def create_ttl_index(apps, schema_editor):
    seconds = int(getattr(settings, "AI_USAGE_LOG_TTL_DAYS", 90)) * 24 * 3600
    schema_editor.connection.database["aiUsageLogs"].create_index(
        "created_at", name=TTL_INDEX, expireAfterSeconds=seconds
    )


def drop_ttl_index(apps, schema_editor):
    schema_editor.connection.database["aiUsageLogs"].drop_index(TTL_INDEX)


class Migration(migrations.Migration):
    dependencies = [("ai_assist", "0001_initial")]

    operations = [migrations.RunPython(create_ttl_index, drop_ttl_index)]

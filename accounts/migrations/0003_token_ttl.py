"""TTL indexes: expired refresh tokens and token families disappear 30 days after their absolute expiry (kept that
long so the sessions page and reuse detection still see recent history)."""

from django.db import migrations

RETENTION_SECONDS = 30 * 24 * 3600


def create_ttl_indexes(apps, schema_editor):
    database = schema_editor.connection.database
    for collection in ("refreshTokens", "tokenFamilies"):
        database[collection].create_index(
            "expires_at", name=f"{collection}_expires_ttl", expireAfterSeconds=RETENTION_SECONDS
        )


def drop_ttl_indexes(apps, schema_editor):
    database = schema_editor.connection.database
    for collection in ("refreshTokens", "tokenFamilies"):
        database[collection].drop_index(f"{collection}_expires_ttl")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_token_families")]

    operations = [migrations.RunPython(create_ttl_indexes, drop_ttl_indexes)]

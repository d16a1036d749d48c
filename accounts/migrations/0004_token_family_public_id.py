"""Token families get a random public id (128 bits) that tokens carry instead of the database id; refresh tokens
record the device that used them (the reuse grace window). Existing families get a random id here; their refresh
tokens keep working (they are found by hash), and the access tokens they carry expire within 15 minutes."""

import secrets

from django.db import migrations, models

import accounts.models


def give_existing_families_a_public_id(apps, schema_editor):
    TokenFamily = apps.get_model("accounts", "TokenFamily")
    for pk in TokenFamily.objects.filter(public_id=None).values_list("pk", flat=True):
        TokenFamily.objects.filter(pk=pk).update(public_id=secrets.token_urlsafe(16))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_token_ttl")]

    operations = [
        migrations.AddField(
            model_name="tokenfamily",
            name="public_id",
            field=models.CharField(editable=False, max_length=32, null=True),
        ),
        migrations.RunPython(give_existing_families_a_public_id, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="tokenfamily",
            name="public_id",
            field=models.CharField(
                default=accounts.models.new_token_family_public_id, editable=False, max_length=32, unique=True
            ),
        ),
        migrations.AddField(
            model_name="refreshtoken",
            name="used_fingerprint",
            field=models.CharField(
                blank=True,
                help_text="Device fingerprint of the refresh that used it (the reuse grace window).",
                max_length=64,
            ),
        ),
    ]

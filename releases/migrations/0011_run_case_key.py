"""Runs carry their case's key (`TestRun.case_key`) and an (RC, status, latest, key, case) index replaces the
(RC, status) one. Existing runs get their case's key in one pass, a batch of cases at a time (one `update_many`
per case: the runs of a case share its key); runs whose case is gone get ""."""

from django.db import migrations, models
from pymongo import UpdateMany

BATCH = 1000


def copy_case_keys(apps, schema_editor):
    database = schema_editor.connection.database
    runs = database["testRuns"]
    batch = []
    for case in database["testCases"].find({}, {"key": 1}).sort("_id", 1):
        batch.append(UpdateMany({"case_id": case["_id"]}, {"$set": {"case_key": case.get("key") or ""}}))
        if len(batch) == BATCH:
            runs.bulk_write(batch, ordered=False)
            batch = []
    if batch:
        runs.bulk_write(batch, ordered=False)
    runs.update_many({"case_key": {"$exists": False}}, {"$set": {"case_key": ""}})


def forget_case_keys(apps, schema_editor):
    schema_editor.connection.database["testRuns"].update_many({}, {"$unset": {"case_key": ""}})


class Migration(migrations.Migration):
    dependencies = [("releases", "0010_case_list_pinned_indexes")]

    operations = [
        # The field's default is never written on its own: the copy below sets every run's value in one pass.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="testrun",
                    name="case_key",
                    field=models.CharField(blank=True, default="", max_length=64),
                )
            ],
            database_operations=[migrations.RunPython(copy_case_keys, forget_case_keys)],
        ),
        migrations.RemoveIndex(model_name="testrun", name="run_rc_status"),
        migrations.AddIndex(
            model_name="testrun",
            index=models.Index(
                fields=["release_candidate", "status", "is_latest", "case_key", "case"], name="run_rc_status_key"
            ),
        ),
    ]

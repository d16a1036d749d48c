from django.db import migrations


def create_journal_index(apps, schema_editor):
    schema_editor.connection.database["importJournal"].create_index(
        [("job_id", 1), ("seq", -1)], name="importjournal_job_seq"
    )


def drop_journal_index(apps, schema_editor):
    schema_editor.connection.database["importJournal"].drop_index("importjournal_job_seq")


class Migration(migrations.Migration):
    dependencies = [("imports", "0001_initial")]

    operations = [migrations.RunPython(create_journal_index, drop_journal_index)]

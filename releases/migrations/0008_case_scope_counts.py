"""Case counts per suite (total, per owner, per category) for coverage; filled from the live cases here, kept by the
summary applier afterwards."""

import django.db.models.deletion
import django.utils.timezone
import django_mongodb_backend.fields
from django.db import migrations, models


def fill_counts(apps, schema_editor):
    database = schema_editor.connection.database
    counts = {}
    grouped = database["testCases"].aggregate(
        [
            {"$match": {"is_deleted": False}},
            {"$group": {"_id": {"s": "$suite_id", "o": "$owner", "c": "$category"}, "n": {"$sum": 1}}},
        ]
    )
    for row in grouped:
        key = row["_id"]
        for dimension, value in (("all", ""), ("owner", key.get("o", "")), ("category", key.get("c", ""))):
            counts[(key["s"], dimension, value)] = counts.get((key["s"], dimension, value), 0) + row["n"]
    documents = [
        {
            "suite_id": suite_id,
            "dimension": dimension,
            "key": value,
            "case_count": count,
            "updated_at": django.utils.timezone.now(),
        }
        for (suite_id, dimension, value), count in counts.items()
    ]
    if documents:
        database["caseScopeCounts"].insert_many(documents)


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0007_run_failure_fields_known_issues"),
    ]

    operations = [
        migrations.CreateModel(
            name="CaseScopeCount",
            fields=[
                (
                    "id",
                    django_mongodb_backend.fields.ObjectIdAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "dimension",
                    models.CharField(
                        choices=[("all", "All cases of the suite"), ("owner", "Owner"), ("category", "Category")],
                        max_length=16,
                    ),
                ),
                ("key", models.CharField(blank=True, max_length=150)),
                ("case_count", models.IntegerField(default=0)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "suite",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="releases.testsuite"
                    ),
                ),
            ],
            options={
                "db_table": "caseScopeCounts",
                "constraints": [
                    models.UniqueConstraint(fields=("suite", "dimension", "key"), name="casecount_unique_suite_dim_key")
                ],
            },
        ),
        migrations.RunPython(fill_counts, migrations.RunPython.noop),
    ]

"""RCs belong to a product. Existing RCs get the product of the suites their runs belong to; an RC whose runs span
several products (or that has no runs) keeps an empty product, is printed here and listed in the admin's
"RCs without a product" filter until someone assigns it."""

from django.db import migrations, models


def assign_products(apps, schema_editor):
    database = schema_editor.connection.database
    products = {suite["_id"]: suite.get("product", "") for suite in database["testSuites"].find({}, {"product": 1})}
    ambiguous = []
    for candidate in database["releaseCandidates"].find({}, {"name": 1, "product": 1}):
        if candidate.get("product"):
            continue
        suite_ids = database["testRuns"].distinct("suite_id", {"release_candidate_id": candidate["_id"]})
        found = {products.get(suite_id, "") for suite_id in suite_ids} - {""}
        if len(found) == 1:
            database["releaseCandidates"].update_one({"_id": candidate["_id"]}, {"$set": {"product": found.pop()}})
        else:
            ambiguous.append((candidate["name"], sorted(found)))
    for name, found in ambiguous:
        detail = ", ".join(found) if found else "no runs"
        print(f"\n  RC {name!r} has no single product ({detail}): assign it in the admin.")  # noqa: T201


class Migration(migrations.Migration):
    dependencies = [("releases", "0005_summary_deltas")]

    operations = [
        migrations.AddField(
            model_name="releasecandidate",
            name="product",
            field=models.CharField(blank=True, db_index=True, default="", max_length=120),
        ),
        migrations.RunPython(assign_products, migrations.RunPython.noop),
    ]

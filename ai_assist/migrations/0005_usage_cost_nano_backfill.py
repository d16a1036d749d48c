"""Usage rows written before costs were integer nano-dollars get `cost_nano` (and `reserved_cost_nano`) from their
float USD figures, so every sum over usage rows (quota and budget seeding, the export) is over exact integers."""

from django.db import migrations

NANO = 1_000_000_000


def backfill(apps, schema_editor):
    collection = schema_editor.connection.database["aiUsageLogs"]
    for row in collection.find({"cost_nano": {"$exists": False}}, {"cost_usd": 1, "reserved_cost_usd": 1}):
        collection.update_one(
            {"_id": row["_id"]},
            {
                "$set": {
                    "cost_nano": round(float(row.get("cost_usd") or 0) * NANO),
                    "reserved_cost_nano": round(float(row.get("reserved_cost_usd") or 0) * NANO),
                }
            },
        )


class Migration(migrations.Migration):
    dependencies = [("ai_assist", "0004_prices_budgets_token_kinds")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]

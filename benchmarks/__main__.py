"""`make bench`: run every `benchmarks/bench_*.py` module side by side in one process and print one table.

Each module exposes `run() -> list[BenchRow]`. Benchmarks start their own embedded MongoDB stand-in and Redis
(through the test settings) and use a throw-away database, so they never touch development data. Absolute numbers
on the stand-in mean little; every row is a ratio against a reference measured in the same run.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "report_platform.settings.test")
os.environ.setdefault("MONGODB_NAME", "bench_report_platform")


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from benchmarks.table import BenchRow, print_table

    only = set(argv)
    connection.ensure_connection()
    connection.connection.drop_database(connection.settings_dict["NAME"])
    call_command("migrate", verbosity=0)
    rows: list[BenchRow] = []
    package_dir = os.path.dirname(__file__)
    for module_info in sorted(pkgutil.iter_modules([package_dir]), key=lambda m: m.name):
        if not module_info.name.startswith("bench_"):
            continue
        if only and module_info.name not in only:
            continue
        module = importlib.import_module(f"benchmarks.{module_info.name}")
        started = time.perf_counter()
        print(f"running {module_info.name} ...", flush=True)
        rows.extend(module.run())
        print(f"  done in {time.perf_counter() - started:.1f}s", flush=True)
    connection.connection.drop_database(connection.settings_dict["NAME"])
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

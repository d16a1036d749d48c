"""`manage.py restore_data FILE`: load an `export_data` file into an EMPTY database (see report_platform/backup.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from report_platform.backup import BackupError, restore_database


class Command(BaseCommand):
    help = (
        "Restore an export_data file into an empty database: the configured one, or --database NAME on the same "
        "server (a restore drill next to production). Refuses a database that holds any document."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="a file written by export_data (.gz or plain)")
        parser.add_argument("--database", default="", help="target database name (default: MONGODB_NAME)")

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} does not exist")
        database = connection.database
        if options["database"]:
            database = database.client[options["database"]]
        try:
            summary = restore_database(database, path)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {summary.documents} documents into {summary.collections} collections of {database.name}."
            )
        )

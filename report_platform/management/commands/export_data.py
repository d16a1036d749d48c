"""`manage.py export_data FILE`: every domain collection as Extended JSON lines (see report_platform/backup.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from ai_assist import usage_buffer
from report_platform.backup import BackupError, export_database


class Command(BaseCommand):
    help = (
        "Export the database (users with password hashes included; sessions excluded) to FILE as JSON lines "
        "(.gz: compressed). The file is written with mode 0600: store it encrypted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="output path; a name ending in .gz is gzip-compressed")

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        if not path.parent.is_dir():
            raise CommandError(f"folder {path.parent} does not exist")
        # AI usage rows still queued in Redis belong in the backup too.
        moved = usage_buffer.flush_quietly()
        if moved:
            self.stdout.write(f"Moved {moved} queued AI usage rows to the database first.")
        try:
            summary = export_database(connection.database, path)
        except BackupError as exc:
            path.unlink(missing_ok=True)
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Exported {summary.documents} documents from {summary.collections} collections to {path}."
            )
        )

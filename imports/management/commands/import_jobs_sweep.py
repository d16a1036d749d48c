"""`manage.py import_jobs_sweep`: finish or fail stale import jobs now (the same work as the periodic task)."""

from django.core.management.base import BaseCommand

from imports.services import import_jobs_sweep


class Command(BaseCommand):
    help = "Re-enqueue import jobs whose worker died or whose message was lost; fail those out of attempts."

    def handle(self, *args, **options):
        counts = import_jobs_sweep()
        self.stdout.write(
            f"requeued={counts['requeued']} failed={counts['failed']} journals_cleaned={counts['journals']}"
        )

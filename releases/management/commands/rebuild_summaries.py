"""Recompute the quality summary documents from the raw runs (all RCs, or the RCs named with --rc)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from releases.models import ReleaseCandidate
from releases.services import summaries_rebuild


class Command(BaseCommand):
    help = "Rebuild the metric summary documents (qualitySummaries) from the test runs."

    def add_arguments(self, parser):
        parser.add_argument("--rc", action="append", default=[], help="RC name (repeatable); default: every RC.")

    def handle(self, *args, **options):
        names = options["rc"]
        ids = None
        if names:
            found = {rc.name: rc.pk for rc in ReleaseCandidate.objects.filter(name__in=names)}
            missing = sorted(set(names) - set(found))
            if missing:
                raise CommandError(f"Unknown RC(s): {', '.join(missing)}")
            ids = list(found.values())
        summaries_rebuild(release_candidate_ids=ids)
        if options["verbosity"]:
            scope = ", ".join(names) if names else "every RC"
            self.stdout.write(self.style.SUCCESS(f"Rebuilt quality summaries for {scope}."))

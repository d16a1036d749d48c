"""`manage.py audit_verify`: walk the audit hash chain and report the first broken link (exit status 1)."""

from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; exit with status 1 and name the first broken event if it is broken."

    def handle(self, *args, **options) -> None:
        report = audit_chain_verify()
        if not report.ok:
            raise CommandError(
                f"Audit chain broken at sequence {report.first_broken_sequence}: {report.reason} "
                f"({report.checked} events before it verified)."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.checked} events verified."))

"""`manage.py audit_verify`: walk the audit hash chain and report the first broken link (exit status 1), and how
many recorded events are not sealed yet."""

from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain; exit with status 1 and name the first broken event if it is broken. "
        "Pending events are sealed first unless --no-seal is given; the count still unsealed is reported."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-seal", action="store_true", help="Check the sealed trail as it is, without sealing pending events."
        )

    def handle(self, *args, **options) -> None:
        report = audit_chain_verify(seal=not options["no_seal"])
        unsealed = f"{report.unsealed} events not yet sealed"
        if not report.ok:
            raise CommandError(
                f"Audit chain broken at sequence {report.first_broken_sequence}: {report.reason} "
                f"({report.checked} events before it verified; {unsealed})."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.checked} events verified. {unsealed}."))

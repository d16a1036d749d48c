from django.apps import AppConfig


class ReportPlatformConfig(AppConfig):
    """Cross-cutting pieces: the stand-in workarounds, the health task, management commands (seed_demo)."""

    name = "report_platform"
    verbose_name = "Report Platform"

    def ready(self) -> None:
        from django.conf import settings

        from report_platform import backend_compat, standin_compat

        backend_compat.install()
        if settings.MONGODB_STANDIN:
            standin_compat.install()

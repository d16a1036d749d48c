"""Platform-level tasks."""

from celery import shared_task
from django.db import connection


@shared_task(name="report_platform.health_ping")
def health_ping(token: str) -> dict:
    """Round trip used by health checks and tests: proves broker, worker, database and result backend work."""
    connection.ensure_connection()
    connection.database.command("ping")
    return {"token": token, "database": "ok"}

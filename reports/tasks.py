"""Celery tasks of the reports app: thin, take ids, call a service. Late acks: a killed worker's job is redelivered."""

from celery import shared_task

from reports import services


@shared_task(name="reports.generate", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def report_generate_task(report_id: str) -> None:
    services.report_generate(report_id=report_id)


@shared_task(name="reports.recover_stale", ignore_result=True)
def report_recover_stale_task() -> int:
    return services.report_recover_stale()

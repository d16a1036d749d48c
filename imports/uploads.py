"""Reading an upload request: the size limit is enforced on Content-Length before the body is read, and on the
file itself before any CSV parsing."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest

from imports.metrics import import_failures_total
from report_platform.errors import PayloadTooLarge, ValidationFailed

# Room for the multipart boundaries and headers around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def _too_large() -> PayloadTooLarge:
    limit = settings.CSV_MAX_UPLOAD_BYTES
    import_failures_total.labels(code="file_too_large").inc()
    return PayloadTooLarge(
        f"The file is larger than the limit of {limit // (1024 * 1024)} MiB ({limit} bytes).", code="file_too_large"
    )


def request_length_check(request: HttpRequest) -> None:
    """Refuse a body that cannot hold an acceptable file, without reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.CSV_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES:
        raise _too_large()


def uploaded_csv(request: HttpRequest, field: str = "file") -> UploadedFile:
    """The uploaded file of a multipart request (already length-checked), or a coded error."""
    upload = request.FILES.get(field)
    if upload is None:
        raise ValidationFailed(
            "Choose a CSV file to upload.", code="file_missing", fields={field: ["A file is required."]}
        )
    if upload.size is not None and upload.size > settings.CSV_MAX_UPLOAD_BYTES:
        raise _too_large()
    return upload


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def junit_request_length_check(request: HttpRequest) -> None:
    """Refuse a JUnit upload body over JUNIT_MAX_UPLOAD_BYTES without reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.JUNIT_MAX_UPLOAD_BYTES
    if length > limit + MULTIPART_OVERHEAD_BYTES:
        import_failures_total.labels(code="file_too_large").inc()
        raise PayloadTooLarge(
            f"The upload is larger than the limit of {limit // (1024 * 1024)} MiB ({limit} bytes).",
            code="file_too_large",
        )

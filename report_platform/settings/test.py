"""Tests: the same stack as dev (real MongoDB wire protocol, real Redis), started on free ports for the run."""

import os
import secrets

from report_platform import embedded, observability

# Start the stand-in MongoDB and redis-server for this test process unless MONGODB_URI / REDIS_URL are set;
# they must exist before base settings read the environment.
embedded.ensure_test_services()
# Metric files of this test run only (the Celery worker subprocess inherits the folder), removed at exit.
observability.private_test_multiprocess_dir()

from .base import *  # noqa: E402, F403
from .base import VAR_DIR  # noqa: E402

DEBUG = False
# Random per test run (inherited by the run's subprocesses through the environment); never a published value.
SECRET_KEY = os.environ.setdefault("REPORT_PLATFORM_TEST_SECRET_KEY", secrets.token_urlsafe(64))
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# bcrypt at cost 12 costs ~300 ms a hash; tests that check the production hasher use it explicitly.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "accounts.hashers.BCryptSHA256Cost12PasswordHasher",
]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = VAR_DIR / "test-media"

# WhiteNoise expects STATIC_ROOT to exist even when it serves from the finders.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# No background drain thread in tests: a row it moved late could land in the next test's clean database. Readers
# drain the usage-log buffer themselves (AiUsageLog.objects); tests of the thread switch it on.
AI_USAGE_FLUSH_SECONDS = 0.0
# Likewise no background reload of the AI price table and budgets within a test run (a reload could seed prices into
# the next test's database); tests clear those per-process copies themselves (tests/ai_assist/conftest.py).
AI_CONFIG_CACHE_SECONDS = 3600.0
AI_OFFLINE_STREAM_PACE_SECONDS = 0.0  # tests that watch pieces arrive set it themselves
SUMMARY_APPLY_SECONDS = 0.0  # likewise for the summary applier thread: readers apply pending deltas themselves

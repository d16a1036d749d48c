"""Development: convenient defaults, the embedded MongoDB stand-in and Redis (started by `make run`)."""

from report_platform.devstack import local_secret_key

from .base import *  # noqa: F403
from .base import VAR_DIR, env_str

DEBUG = True
# Random per checkout (var/secret_key, generated on first use) unless DJANGO_SECRET_KEY is given: a key published
# in the repository would let anyone forge sessions, API tokens (derived JWT key) and report links.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or local_secret_key(VAR_DIR)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
INTERNAL_IPS = ["127.0.0.1"]

# WhiteNoise expects STATIC_ROOT to exist even when it serves from the finders.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

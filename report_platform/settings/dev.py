"""Development: convenient defaults, the embedded MongoDB stand-in and Redis (started by `make run`)."""

from .base import *  # noqa: F403
from .base import VAR_DIR, env_str

DEBUG = True
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-secret-key-change-me-0123456789abcdef")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
INTERNAL_IPS = ["127.0.0.1"]

# WhiteNoise expects STATIC_ROOT to exist even when it serves from the finders.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

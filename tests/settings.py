"""Django settings for the test suite.

``DOMAIN_EVENTS_TEST_DB`` picks the database: ``sqlite`` (the default, in memory) or
``postgres`` (127.0.0.1:5432, user ``postgres``; the database name comes from
``DOMAIN_EVENTS_TEST_DB_NAME`` so that parallel runs do not share one). Each backend has a second
alias, ``other``, for tests of ``using=``.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY = "django-domain-events-tests-not-a-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django_domain_events",
    "tests.testapp",
]


def _databases(backend: str) -> dict[str, dict[str, Any]]:
    if backend == "sqlite":
        # In memory: Django's test runner gives each alias its own shared-cache database.
        return {
            alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
            for alias in ("default", "other")
        }
    if backend == "postgres":
        name = os.environ.get("DOMAIN_EVENTS_TEST_DB_NAME", "domain_events")
        return {
            alias: {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": "5432",
                "USER": "postgres",
                "NAME": db_name,
            }
            for alias, db_name in (("default", name), ("other", f"{name}_other"))
        }
    raise ImproperlyConfigured(
        f"DOMAIN_EVENTS_TEST_DB={backend!r} is not a known test database: "
        "set it to 'sqlite' or 'postgres'."
    )


DATABASES = _databases(os.environ.get("DOMAIN_EVENTS_TEST_DB", "sqlite"))
DATABASE_ROUTERS: list[str] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Hashing passwords properly is slow on purpose; tests create users often.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DOMAIN_EVENTS = {"DISPATCHER": "sync"}

# Records still reach pytest's caplog through propagation; nothing is printed.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"], "level": "WARNING"},
}

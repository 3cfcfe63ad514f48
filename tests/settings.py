"""Django settings for the test suite.

``DOMAIN_EVENTS_TEST_DB`` picks the database: ``sqlite`` (the default, in memory), ``postgres``
(127.0.0.1:5432, user ``postgres``) or ``mariadb`` (127.0.0.1:3306, user ``root`` with no
password; MySQL 8 answers the same settings). The database name comes from
``DOMAIN_EVENTS_TEST_DB_NAME`` so that parallel runs do not share one. Each backend has a second
alias, ``other``, for tests of ``using=``.
"""

from __future__ import annotations

import importlib.util
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
    # Optional: with its database result backend, each delivery's task leaves a TaskResult.
    "django_celery_results",
    "tests.testapp",
]


def _other_name(name: str) -> str:
    # A process a test starts is handed both test databases' names: pytest-django's names
    # for "other" are not this one's with a suffix.
    return os.environ.get("DOMAIN_EVENTS_TEST_DB_OTHER_NAME") or f"{name}_other"


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
            for alias, db_name in (("default", name), ("other", _other_name(name)))
        }
    if backend == "mariadb":
        name = os.environ.get("DOMAIN_EVENTS_TEST_DB_NAME", "domain_events")
        return {
            alias: {
                "ENGINE": "django.db.backends.mysql",
                "HOST": "127.0.0.1",
                "PORT": "3306",
                "USER": "root",
                "PASSWORD": "",
                "NAME": db_name,
                # READ COMMITTED, as docs/databases.md asks: the relay must see rows committed
                # after its transaction began, and REPEATABLE READ would hide them.
                "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
                "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
            }
            for alias, db_name in (("default", name), ("other", _other_name(name)))
        }
    raise ImproperlyConfigured(
        f"DOMAIN_EVENTS_TEST_DB={backend!r} is not a known test database: "
        "set it to 'sqlite', 'postgres' or 'mariadb'."
    )


DATABASES = _databases(os.environ.get("DOMAIN_EVENTS_TEST_DB", "sqlite"))
# MySQL and MariaDB have no partial indexes, and Django says so of each (docs/databases.md).
SILENCED_SYSTEM_CHECKS = (
    ["models.W037"] if os.environ.get("DOMAIN_EVENTS_TEST_DB") == "mariadb" else []
)
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

DOMAIN_EVENTS: dict[str, Any] = {"DISPATCHER": "sync"}
if os.environ.get("DOMAIN_EVENTS_TEST_CELERY_QUEUE"):
    # A test's Celery worker sends retries to the queue that test listens to.
    DOMAIN_EVENTS["CELERY_QUEUE"] = os.environ["DOMAIN_EVENTS_TEST_CELERY_QUEUE"]
if os.environ.get("DOMAIN_EVENTS_TEST_SPANS_FILE"):
    # A process a tracing test started: spans on, and written where the test reads them.
    from tests.tracing_sdk import export_spans_to

    DOMAIN_EVENTS["TRACING"] = True
    export_spans_to(os.environ["DOMAIN_EVENTS_TEST_SPANS_FILE"])

# Celery, configured the usual way: tests/celery_app.py reads these CELERY_* settings.
# DOMAIN_EVENTS_TEST_BROKER_URL picks the broker: Redis unless set, in a database of its own
# because the short visibility timeout below applies to every queue of a Redis database.
CELERY_BROKER_URL = os.environ.get("DOMAIN_EVENTS_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_DB_REUSE_MAX = 100
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# Redis hands a killed worker's unacknowledged tasks to another worker within seconds, not the
# default hour, so the tests that kill workers are quick.
REDIS_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 5,
}
CELERY_BROKER_TRANSPORT_OPTIONS = (
    REDIS_TRANSPORT_OPTIONS if CELERY_BROKER_URL.startswith("redis") else {}
)

# Records still reach pytest's caplog through propagation; nothing is printed.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"], "level": "WARNING"},
}

# django.tasks (Django 6+): tasks run at once in this process unless a test names another
# backend: "dummy" keeps what is enqueued, on two queues only. With django-tasks-db installed,
# "database" is its backend, on any queue, whose db_worker the integration tests run.
TASKS: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    "dummy": {"BACKEND": "django.tasks.backends.dummy.DummyBackend", "QUEUES": ["default", "crm"]},
}
if importlib.util.find_spec("django.tasks") and importlib.util.find_spec("django_tasks_db"):
    INSTALLED_APPS.insert(INSTALLED_APPS.index("tests.testapp"), "django_tasks_db")
    TASKS["database"] = {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}

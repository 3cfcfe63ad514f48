"""Django settings of the Celery benchmark: PostgreSQL, Redis, a worker with or without
``CELERY_DB_REUSE_MAX``.

``DDE_BENCH_CELERY_DB`` names the database (``dde_bench_celery``), ``DDE_BENCH_BROKER_URL`` the
broker (Redis database 14, kept apart from the test suite's), ``DDE_BENCH_QUEUE`` the queue and
``DDE_BENCH_DB_REUSE_MAX`` the worker's ``CELERY_DB_REUSE_MAX`` (unset: Celery's default, a new
connection for every task).
"""

from __future__ import annotations

import os

SECRET_KEY = "django-domain-events-benchmarks-not-a-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = ["django_domain_events", "benchmarks.celerybench"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "USER": "postgres",
        "NAME": os.environ.get("DDE_BENCH_CELERY_DB", "dde_bench_celery"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DOMAIN_EVENTS = {
    "DISPATCHER": "celery",
    "CELERY_QUEUE": os.environ.get("DDE_BENCH_QUEUE", "dde-bench"),
}

CELERY_BROKER_URL = os.environ.get("DDE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
if os.environ.get("DDE_BENCH_DB_REUSE_MAX"):
    CELERY_DB_REUSE_MAX = int(os.environ["DDE_BENCH_DB_REUSE_MAX"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

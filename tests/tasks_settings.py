"""Settings of the ``db_worker`` processes the django.tasks integration tests start: the test
settings, with the app of their receivers, retries due at once, and the worker's log printed."""

from __future__ import annotations

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.tasksapp"]  # noqa: F405
DOMAIN_EVENTS = {**DOMAIN_EVENTS, "RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0}  # noqa: F405
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        name: {"handlers": ["console"], "level": "INFO"}
        for name in ("django_domain_events", "django_tasks_db", "django.tasks")
    },
}

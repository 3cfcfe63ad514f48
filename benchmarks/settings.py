"""Django settings of the benchmark project: one database alias per database under test.

``sqlite`` is a file (``DDE_BENCH_SQLITE_PATH``; ``benchmarks/run.py`` points it into a fresh
temporary directory) in WAL mode with ``synchronous=NORMAL``, the usual production setup.
``postgres`` is 127.0.0.1:5432, user ``postgres``, database ``dde_bench`` (created by the run if
missing). ``mariadb`` is 127.0.0.1:3306, user ``root`` with no password, database ``dde_bench``
(``DDE_BENCH_MARIADB_NAME``), measured when ``--db mariadb`` names it. ``default`` is left
unconfigured, so a case that forgets to name its alias fails
instead of measuring the wrong database.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

SECRET_KEY = "django-domain-events-benchmarks-not-a-secret"
# DEBUG keeps every query in memory: the timings and the RSS measurement would both suffer.
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django_domain_events",
    "benchmarks.benchapp",
]

# The django.tasks cases (Django 6 with django-tasks-db): its database backend, on any queue,
# keeping its tasks in the database of the case that enqueues them.
if importlib.util.find_spec("django.tasks") and importlib.util.find_spec("django_tasks_db"):
    INSTALLED_APPS.append("django_tasks_db")
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}
    DATABASE_ROUTERS = ["benchmarks.tasks_router.TasksRouter"]

SQLITE_PATH = os.environ.get("DDE_BENCH_SQLITE_PATH") or str(
    Path(tempfile.gettempdir()) / "dde_bench.sqlite3"
)
POSTGRES_NAME = os.environ.get("DDE_BENCH_POSTGRES_NAME", "dde_bench")
MARIADB_NAME = os.environ.get("DDE_BENCH_MARIADB_NAME", "dde_bench")

DATABASES = {
    "default": {},
    "sqlite": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SQLITE_PATH,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "USER": "postgres",
        "NAME": POSTGRES_NAME,
    },
}
# Measured on demand only (--db mariadb), and only configured where its driver, mysqlclient
# (the [mysql] extra), is installed: Django imports the backend of every alias it closes.
if importlib.util.find_spec("MySQLdb") is not None:
    DATABASES["mariadb"] = {
        "ENGINE": "django.db.backends.mysql",
        "HOST": "127.0.0.1",
        "PORT": "3306",
        "USER": "root",
        "PASSWORD": "",
        "NAME": MARIADB_NAME,
        "OPTIONS": {"charset": "utf8mb4"},
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cases override this per run: each chooses its dispatcher and receivers.
DOMAIN_EVENTS = {"DISPATCHER": "deferred"}

# The Celery cases: Redis database 14 (apart from the test suite's), queues named per run by
# benchmarks/cases/celery.py, and a worker that keeps its database connections between tasks
# (the setting the docs recommend; without it Celery reconnects around every task).
CELERY_BROKER_URL = os.environ.get("DDE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_DB_REUSE_MAX = 100

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

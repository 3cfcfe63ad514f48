"""The benchmark project's Celery app, set up as a Django project sets up its own.

The benchmark process sends tasks with it; ``benchmarks/cases/celery.py`` starts a prefork worker
on it (``celery -A benchmarks.celery_app worker``), which runs the delivery task and the floors'
bare task, and registers the receivers the Celery cases publish to (one unordered, one
ordered).
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

app = Celery("dde-bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("django_domain_events.dispatchers.celery.tasks", "benchmarks.benchapp.tasks")


@worker_init.connect
def _register_receiver(**kwargs: object) -> None:
    # In the worker only: the benchmark process registers them inside each case's own registry.
    from benchmarks.benchapp.tasks import register_celery_receiver

    register_celery_receiver()
    register_celery_receiver(ordered=True)

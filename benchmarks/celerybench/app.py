"""The benchmark's Celery app, set up as a Django project sets up its own."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.celerybench.settings")

app = Celery("celerybench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

"""The demo shop's Celery app, in the usual Django layout; ``scripts/demo.py --celery`` runs
``celery -A testproject.celery worker`` with it.

Its settings are the ``CELERY_*`` ones in ``testproject/settings.py``; ``app.autodiscover_tasks()``
finds ``django_domain_events.tasks``, the task that runs one delivery.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

app = Celery("testproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

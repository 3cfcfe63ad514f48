"""The Celery app of the test suite, set up as a Django project sets up its own.

The Celery integration tests run ``celery -A tests.celery_app worker`` against it; the broker
comes from ``DOMAIN_EVENTS_TEST_BROKER_URL`` (see tests/settings.py).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

"""The accounting service's Celery app: ``celery -A consumerproject.celery worker`` consumes
the shop's messages in a thread of the worker, as ``manage.py consume_events`` would alone.

The one line that does it is ``app.steps["worker"].add(ConsumeEventsStep)``; the worker's own
broker is the one the messages come from (``ACCOUNTING_BROKER_URL``).
"""

from __future__ import annotations

import os

from celery import Celery

from django_domain_events.integration.celery_consumer import ConsumeEventsStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consumerproject.settings")

app = Celery("consumerproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.steps["worker"].add(ConsumeEventsStep)

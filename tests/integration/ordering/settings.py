"""Settings of the processes the ordering tests start (Celery workers, management commands):
the test settings, the ordering receivers, quick retries, and ``DOMAIN_EVENTS`` additions read
from ``DOMAIN_EVENTS_TEST_SETTINGS`` (JSON)."""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.integration.ordering.apps.OrderingTestsConfig"]  # noqa: F405
# No task results: a row per task would only slow the workers down.
CELERY_RESULT_BACKEND = "disabled"
DOMAIN_EVENTS = {
    **DOMAIN_EVENTS,  # noqa: F405
    # The worker's own app, which management commands would otherwise not import.
    "CELERY_APP": "tests.celery_app.app",
    # A failed attempt is retried within a fraction of a second.
    "RETRY_BASE_DELAY": 0.05,
    "RETRY_MAX_DELAY": 0.2,
    **json.loads(os.environ.get("DOMAIN_EVENTS_TEST_SETTINGS", "{}")),
}

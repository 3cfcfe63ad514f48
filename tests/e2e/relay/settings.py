"""Settings of the processes the relay tests start: the test settings, the test receivers, and
``DOMAIN_EVENTS`` read from ``DOMAIN_EVENTS_TEST_SETTINGS`` (JSON)."""

from __future__ import annotations

import datetime as dt
import json
import os

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.e2e.relay.apps.RelayTestsConfig"]  # noqa: F405
DOMAIN_EVENTS = {
    "DISPATCHER": "sync",
    **json.loads(os.environ.get("DOMAIN_EVENTS_TEST_SETTINGS", "{}")),
}

# JSON has no timedelta: the tests give retentions in seconds.
DOMAIN_EVENTS["RETENTION"] = {
    key: {state: None if age is None else dt.timedelta(seconds=age) for state, age in kept.items()}
    for key, kept in DOMAIN_EVENTS.get("RETENTION", {}).items()
}

if os.environ.get("DOMAIN_EVENTS_TEST_DB_PORT"):
    # Through a proxy the test can cut.
    DATABASES["default"]["PORT"] = os.environ["DOMAIN_EVENTS_TEST_DB_PORT"]  # noqa: F405

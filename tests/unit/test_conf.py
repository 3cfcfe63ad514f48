"""The DOMAIN_EVENTS settings: defaults, and values read from Django's settings on access."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from django_domain_events.conf import DEFAULTS, Settings, settings

EXPECTED_DEFAULTS = {
    "DISPATCHER": "sync",
    "MAX_ATTEMPTS": 5,
    "RETRY_BASE_DELAY": 2.0,
    "RETRY_MAX_DELAY": 3600.0,
    "RECEIVER_TIMEOUT": 300.0,
    "MAX_PAYLOAD_BYTES": 262144,
    "MAX_RECEIVERS_PER_EVENT": None,
    "ORDERED_RECEIVERS": False,
    "ORDERED_ON_DEAD": "block",
    "DEBUG": False,
    "METRICS": False,
    "METRICS_CACHE_SECONDS": 5.0,
    "TRACING": False,
    "CELERY_APP": None,
    "CELERY_QUEUE": None,
    "CELERY_PUBLISH_TIMEOUT": 1.5,
    "CELERY_BROKER_TIMEOUT": 1.0,
    "CELERY_BROKER_COOLDOWN": 5.0,
    "CELERY_MAX_RETRY_DELAY": 60.0,
    "TASKS_BACKEND": "default",
    "TASKS_QUEUE": None,
    "TASKS_PRIORITY": 0,
    "TASKS_PRIORITIES": {},
    "RELAY_BATCH_SIZE": 500,
    "SHARED_COMMIT_SIZE": 100,
    "RELAY_INTERVAL": 1.0,
    "RELAY_GRACE": 5.0,
    "RELAY_LEASE": 60.0,
    "DISPATCH_TIMEOUT": 300.0,
    "RELAY_LISTEN": True,
    "RELAY_CHANNEL": "domain_events",
    "PRUNE_RETENTION_DAYS": 30.0,
    "RETENTION": {},
    "RELAY_PRUNE_EVERY": None,
    "ATTEMPT_HISTORY": 20,
    "STATUS_MAX_OWED_AGE": 300.0,
    "STATUS_MAX_DEAD": None,
    "STATUS_MAX_BLOCKED_KEYS": 0,
    "ADMIN_ALLOW_DELETE": False,
    "TRANSPORTS": {},
    "ROUTES": {},
    # None in the settings: "/<project>", from ROOT_URLCONF ("tests.urls").
    "INTEGRATION_SOURCE": "/tests",
    "CONSUME": None,
    "CONSUMER_UNKNOWN_TYPES": "record",
    "INBOX_RETENTION": {"processed": dt.timedelta(days=30)},
    "PUBLISH_OUTSIDE_ATOMIC": "ignore",
}


def values() -> dict[str, object]:
    return {key: getattr(settings, key) for key in EXPECTED_DEFAULTS}


def test_defaults_without_a_domain_events_setting() -> None:
    with override_settings():
        del django_settings.DOMAIN_EVENTS

        assert values() == EXPECTED_DEFAULTS


@pytest.mark.parametrize("configured", [{}, None])
def test_defaults_with_an_empty_setting(configured: object) -> None:
    with override_settings(DOMAIN_EVENTS=configured):
        assert values() == EXPECTED_DEFAULTS


def test_every_documented_key_has_a_typed_attribute() -> None:
    attributes = {name for name in vars(Settings) if name.isupper()}

    assert attributes == set(DEFAULTS) == set(EXPECTED_DEFAULTS)


def test_configured_keys_override_their_defaults_only() -> None:
    with override_settings(DOMAIN_EVENTS={"MAX_ATTEMPTS": 9, "DISPATCHER": "deferred"}):
        assert values() == {**EXPECTED_DEFAULTS, "MAX_ATTEMPTS": 9, "DISPATCHER": "deferred"}


def test_values_are_read_on_every_access() -> None:
    # The module-level object existed before the override: nothing was read at import time.
    assert settings.MAX_PAYLOAD_BYTES == 262144

    with override_settings(DOMAIN_EVENTS={"MAX_PAYLOAD_BYTES": 100}):
        assert settings.MAX_PAYLOAD_BYTES == 100
        with override_settings(DOMAIN_EVENTS={"MAX_PAYLOAD_BYTES": 50}):
            assert settings.MAX_PAYLOAD_BYTES == 50
        assert settings.MAX_PAYLOAD_BYTES == 100

    assert settings.MAX_PAYLOAD_BYTES == 262144


def test_values_have_the_documented_types() -> None:
    with override_settings(
        DOMAIN_EVENTS={
            "MAX_ATTEMPTS": 3,
            "RETRY_BASE_DELAY": 1,
            "RETRY_MAX_DELAY": 60,
            "MAX_PAYLOAD_BYTES": 1024,
        }
    ):
        assert type(settings.RETRY_BASE_DELAY) is float
        assert type(settings.RETRY_MAX_DELAY) is float
        assert settings.RETRY_BASE_DELAY == 1.0
        assert settings.RETRY_MAX_DELAY == 60.0
        assert type(settings.MAX_ATTEMPTS) is int
        assert type(settings.MAX_PAYLOAD_BYTES) is int

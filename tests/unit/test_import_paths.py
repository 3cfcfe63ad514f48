"""The import paths that code and settings written against earlier layouts name keep working,
and give the very objects of the modules that hold them now."""

from __future__ import annotations

import importlib

import pytest
from django.utils.module_loading import import_string

from tests.imports_probe import imported_by_a_plain_publish

KEPT = [
    ("django_domain_events.backend", "django_domain_events.compat.backend"),
    ("django_domain_events.tasks", "django_domain_events.dispatchers.celery.tasks"),
    ("django_domain_events.log_filter", "django_domain_events.observability.log_filter"),
    ("django_domain_events.metrics", "django_domain_events.observability.metrics"),
    ("django_domain_events.registry", "django_domain_events.declaration.registry"),
    ("django_domain_events.aggregates", "django_domain_events.publishing.aggregates"),
    ("django_domain_events.delivery", "django_domain_events.delivery.runner"),
    ("django_domain_events.checks", "django_domain_events.checks.declarations"),
]


@pytest.mark.parametrize(("kept", "home"), KEPT)
def test_a_kept_path_hands_on_the_objects_of_their_home(kept: str, home: str) -> None:
    module, holder = importlib.import_module(kept), importlib.import_module(home)
    public = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    names = [name for name in public if hasattr(holder, name) and name != "annotations"]

    assert names, f"{kept} hands on nothing of {home}"
    for name in names:
        assert getattr(module, name) is getattr(holder, name), f"{kept}.{name}"


@pytest.mark.parametrize(
    "path",
    [
        # LOGGING's "()" and URLconfs name these as strings.
        "django_domain_events.log_filter.CorrelationFilter",
        "django_domain_events.metrics.metrics_view",
        # Settings name dispatchers by dotted path.
        "django_domain_events.dispatchers.sync.SyncDispatcher",
        "django_domain_events.dispatchers.deferred.DeferredDispatcher",
        "django_domain_events.dispatchers.celery.CeleryDispatcher",
        # TRANSPORTS names its backends by dotted path.
        "django_domain_events.transports.rabbitmq.RabbitMQTransport",
        "django_domain_events.transports.redis_streams.RedisStreamsTransport",
        "django_domain_events.transports.memory.InMemoryTransport",
        # Migrations of models that record events name the mixin as a base class.
        "django_domain_events.aggregates.EventRecordingMixin",
    ],
)
def test_a_dotted_path_in_settings_or_migrations_still_imports(path: str) -> None:
    assert import_string(path).__name__ == path.rsplit(".", 1)[1]


def test_the_celery_tasks_are_where_autodiscovery_looks() -> None:
    tasks = importlib.import_module("django_domain_events.tasks")

    assert tasks.deliver.name == "django_domain_events.deliver"
    assert tasks.relay.name == "django_domain_events.relay"


def test_the_broker_modules_import_no_broker_client_until_a_transport_is_built() -> None:
    # Routes, messages and the transport handler load with the app; kombu only with the
    # RabbitMQ backend and redis only with the Redis Streams one, which a plain publish
    # never builds.
    assert imported_by_a_plain_publish(["kombu", "amqp", "redis"]) == "[]"

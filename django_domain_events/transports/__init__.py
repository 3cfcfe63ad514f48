"""Transports by alias: built from ``DOMAIN_EVENTS["TRANSPORTS"]`` on first use, cached, closed
and forgotten when the settings change. Nothing of a broker's client is imported before."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from django_domain_events.conf import settings
from django_domain_events.exceptions import TransportConfigurationError
from django_domain_events.transports.base import Destination, Received, Transport

RABBITMQ = "django_domain_events.transports.rabbitmq.RabbitMQTransport"
"""The ``BACKEND`` of the RabbitMQ transport."""

REDIS_STREAMS = "django_domain_events.transports.redis_streams.RedisStreamsTransport"
"""The ``BACKEND`` of the Redis Streams transport."""

_EXTRAS = {"kombu": "rabbitmq", "amqp": "rabbitmq", "redis": "redis"}


def transport_class(alias: str, config: Mapping[str, Any]) -> type[Transport]:
    """Import the ``BACKEND`` of a ``TRANSPORTS`` entry, raising
    ``TransportConfigurationError`` naming the problem and the fix."""
    path = config.get("BACKEND")
    if not isinstance(path, str) or "." not in path:
        raise TransportConfigurationError(
            f'DOMAIN_EVENTS["TRANSPORTS"][{alias!r}]["BACKEND"] is {path!r}; give the dotted '
            f"path of a Transport subclass, such as {RABBITMQ!r}."
        )
    try:
        cls = import_string(path)
    except ImportError as exc:
        hint = ""
        missing = str(getattr(exc, "name", None) or "").split(".")[0]
        if missing in _EXTRAS:
            hint = f' Install it with: pip install "django-domain-outbox[{_EXTRAS[missing]}]".'
        raise TransportConfigurationError(
            f"Transport {alias!r}: its BACKEND {path!r} cannot be imported: {exc}.{hint}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise TransportConfigurationError(
            f"Transport {alias!r}: its BACKEND {path!r} is {cls!r}, not a subclass of "
            f"django_domain_events.transports.base.Transport."
        )
    return cls


class TransportHandler:
    """``transports["default"]``: one instance per alias, like ``django.core.cache.caches``."""

    def __init__(self) -> None:
        self._instances: dict[str, Transport] = {}
        self._lock = threading.Lock()

    def __getitem__(self, alias: str) -> Transport:
        instance = self._instances.get(alias)
        if instance is None:
            with self._lock:
                instance = self._instances.get(alias)
                if instance is None:
                    instance = self._instances[alias] = _build(alias)
        return instance

    def close_all(self) -> None:
        """Close every transport built so far and forget them: the next lookup builds them
        again from the current settings."""
        with self._lock:
            built, self._instances = self._instances, {}
        for transport in built.values():
            transport.close()


def _build(alias: str) -> Transport:
    configured = settings.TRANSPORTS
    config = configured.get(alias)
    if not isinstance(config, Mapping):
        known = ", ".join(repr(name) for name in sorted(configured)) or "none"
        raise TransportConfigurationError(
            f'No transport {alias!r} in DOMAIN_EVENTS["TRANSPORTS"] (configured: {known}). '
            f'Add {{"{alias}": {{"BACKEND": "{RABBITMQ}", "URL": "amqp://..."}}}}.'
        )
    cls = transport_class(alias, config)
    return cls(alias, str(config.get("URL") or ""), dict(config.get("OPTIONS") or {}))


transports = TransportHandler()


def transport_for(name: str) -> Transport:
    """The transport of alias ``name`` in ``DOMAIN_EVENTS["TRANSPORTS"]``, built on first use."""
    return transports[name]


def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "DOMAIN_EVENTS":
        transports.close_all()


setting_changed.connect(_reset_on_setting_change, dispatch_uid="django_domain_events.transports")

__all__ = [
    "RABBITMQ",
    "REDIS_STREAMS",
    "Destination",
    "Received",
    "Transport",
    "TransportHandler",
    "transport_class",
    "transport_for",
    "transports",
]

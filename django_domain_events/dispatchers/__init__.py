"""Dispatchers by name: built from settings on first use, cached, reset when settings change."""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from django_domain_events.dispatchers.base import Dispatcher, OwedDelivery
from django_domain_events.exceptions import DispatcherError

BUILTIN_DISPATCHERS = {
    "sync": "django_domain_events.dispatchers.sync.SyncDispatcher",
    "deferred": "django_domain_events.dispatchers.deferred.DeferredDispatcher",
    # Imported only when named: nothing Celery-related loads for the other dispatchers.
    "celery": "django_domain_events.dispatchers.celery.dispatcher.CeleryDispatcher",
    # Django 6+ only: imports django.tasks, and only when named.
    "tasks": "django_domain_events.dispatchers.tasks.dispatcher.TasksDispatcher",
}
"""Short names accepted wherever a dispatcher is named, and the classes they stand for."""


def dispatcher_class(name: str) -> type[Dispatcher]:
    """Import the class behind a short name or dotted path, raising ``DispatcherError``."""
    path = BUILTIN_DISPATCHERS.get(name, name)
    if "." not in path:
        raise DispatcherError(
            f"Unknown dispatcher {name!r}. Use one of {', '.join(sorted(BUILTIN_DISPATCHERS))} "
            f"or the dotted path of a Dispatcher subclass."
        )
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise DispatcherError(f"Dispatcher {name!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Dispatcher)):
        raise DispatcherError(
            f"Dispatcher {name!r} is {cls!r}, not a subclass of "
            f"django_domain_events.dispatchers.Dispatcher."
        )
    return cls


class DispatcherHandler:
    """``dispatchers["sync"]``: one instance per name, like ``django.core.cache.caches``."""

    def __init__(self) -> None:
        self._instances: dict[str, Dispatcher] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Dispatcher:
        instance = self._instances.get(name)
        if instance is None:
            with self._lock:
                instance = self._instances.get(name)
                if instance is None:
                    instance = self._instances[name] = dispatcher_class(name)(name)
        return instance

    def reset(self) -> None:
        """Forget the instances, so the next lookup builds them from the current settings."""
        with self._lock:
            self._instances = {}


dispatchers = DispatcherHandler()


def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "DOMAIN_EVENTS":
        dispatchers.reset()


setting_changed.connect(_reset_on_setting_change, dispatch_uid="django_domain_events.dispatchers")

__all__ = ["BUILTIN_DISPATCHERS", "Dispatcher", "OwedDelivery", "dispatcher_class", "dispatchers"]

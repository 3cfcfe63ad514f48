"""System checks: configuration and declaration mistakes reported at start-up.

Every check has a stable id (``django_domain_events.E001`` …) that a project can silence with
``SILENCED_SYSTEM_CHECKS``.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Sequence
from typing import Any, cast

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, register

from .conf import DEFAULTS
from .dispatchers import BUILTIN_DISPATCHERS, dispatcher_class
from .events import DomainEvent, event_classes
from .exceptions import DispatcherError, EventDefinitionError
from .registry import registry
from .serialization import check_event_class

PREFIX = "django_domain_events"


@register(Tags.compatibility)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E001 unknown keys, E002 bad values, E003 unknown default dispatcher."""
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    if configured is None:
        return []
    if not isinstance(configured, dict):
        return [
            Error(
                f"DOMAIN_EVENTS must be a dict, got {type(configured).__name__}.",
                hint='Write DOMAIN_EVENTS = {"DISPATCHER": "sync"} or leave it out.',
                id=f"{PREFIX}.E002",
            )
        ]
    errors: list[CheckMessage] = []
    for key in configured:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            errors.append(
                Error(
                    f"DOMAIN_EVENTS has an unknown key {key!r}.",
                    hint=f"{hint}Known keys: {', '.join(sorted(DEFAULTS))}.",
                    id=f"{PREFIX}.E001",
                )
            )
    for key, kinds, minimum in (
        ("MAX_ATTEMPTS", int, 1),
        ("RETRY_BASE_DELAY", int | float, 0),
        ("RETRY_MAX_DELAY", int | float, 0),
        ("MAX_PAYLOAD_BYTES", int, 1),
    ):
        if key not in configured:
            continue
        value = configured[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, kinds)
            or not math.isfinite(value)
            or value < minimum
        ):
            what = "an integer" if kinds is int else "a finite number"
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {value!r}; it must be {what} >= {minimum}.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id=f"{PREFIX}.E002",
                )
            )
    if "DISPATCHER" in configured:
        errors.extend(_dispatcher_errors(configured["DISPATCHER"], 'DOMAIN_EVENTS["DISPATCHER"]'))
    return errors


def _dispatcher_errors(name: Any, where: str) -> list[CheckMessage]:
    if not isinstance(name, str):
        return [
            Error(
                f"{where} is {name!r}; it must be a string.",
                hint=f"Use one of {', '.join(sorted(BUILTIN_DISPATCHERS))} or a dotted path.",
                id=f"{PREFIX}.E003",
            )
        ]
    try:
        dispatcher_class(name)
    except DispatcherError as exc:
        return [
            Error(
                f"{where}: {exc}",
                hint=(
                    f"Use one of {', '.join(sorted(BUILTIN_DISPATCHERS))} or the dotted path of a "
                    f"django_domain_events.dispatchers.Dispatcher subclass."
                ),
                id=f"{PREFIX}.E003",
            )
        ]
    return []


@register(Tags.compatibility)
def check_event_classes(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E004 two event classes with one event type, E005 an event class the codec cannot store."""
    errors: list[CheckMessage] = []
    by_type: dict[str, list[type[DomainEvent]]] = {}
    for cls in event_classes():
        by_type.setdefault(cls.event_type, []).append(cls)
        try:
            check_event_class(cls)
        except EventDefinitionError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint="See the Events page of the docs for the supported field types.",
                    obj=cls,
                    id=f"{PREFIX}.E005",
                )
            )
    for event_type, classes in sorted(by_type.items()):
        if len(classes) > 1:
            names = ", ".join(f"{cls.__module__}.{cls.__qualname__}" for cls in classes)
            errors.append(
                Error(
                    f"Event type {event_type!r} is claimed by {len(classes)} classes: {names}.",
                    hint="Give each class its own event_type (set the event_type class attribute).",
                    id=f"{PREFIX}.E004",
                )
            )
    return errors


@register(Tags.compatibility)
def check_receivers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E006 duplicate names, E007 not a DomainEvent, E008 not callable, E009 bad signature,
    E003 unknown dispatcher."""
    errors: list[CheckMessage] = []
    for name, claims in sorted(registry._registry.items()):
        if len(claims) > 1:
            errors.append(
                Error(
                    f"Receiver name {name!r} is used by {len(claims)} functions: "
                    f"{', '.join(claim.origin for claim in claims)}.",
                    hint="Give one of them another name with @receiver(..., name='...').",
                    id=f"{PREFIX}.E006",
                )
            )
    for receiver in registry.all():
        target = receiver.target
        if isinstance(target, type) and not issubclass(target, DomainEvent):
            errors.append(
                Error(
                    f"Receiver {receiver.name!r} listens to {target.__qualname__}, which is not "
                    f"a DomainEvent subclass.",
                    hint=(
                        f"Make {target.__qualname__} subclass django_domain_events.DomainEvent, "
                        f"or listen to a named event with a string."
                    ),
                    obj=receiver.origin,
                    id=f"{PREFIX}.E007",
                )
            )
        if not callable(cast(object, receiver.func)):
            errors.append(
                Error(
                    f"Receiver {receiver.name!r} is {receiver.func!r}, which is not callable.",
                    hint="Apply @receiver to a function or an async function.",
                    id=f"{PREFIX}.E008",
                )
            )
        elif not _accepts_event(receiver.func):
            errors.append(
                Error(
                    f"Receiver {receiver.name!r} cannot be called with the event as its only "
                    f"positional argument.",
                    hint=(
                        "Give it the signature (event) or (event, envelope); any other "
                        "parameter needs a default."
                    ),
                    obj=receiver.origin,
                    id=f"{PREFIX}.E009",
                )
            )
        if receiver.dispatcher is not None:
            errors.extend(
                _dispatcher_errors(receiver.dispatcher, f"Receiver {receiver.name!r} dispatcher")
            )
    return errors


def _accepts_event(func: Any) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return True  # builtins and C callables: nothing to check
    kwargs = {"envelope": None} if "envelope" in signature.parameters else {}
    try:
        signature.bind(object(), **kwargs)
    except TypeError:
        return False
    return True

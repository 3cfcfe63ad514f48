"""System checks: configuration and declaration mistakes reported at start-up.

Every check has a stable id (``django_domain_events.E001`` …) that a project can silence with
``SILENCED_SYSTEM_CHECKS``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import inspect
import math
from collections.abc import Sequence
from typing import Any, cast

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, register

from django_domain_events.compat.backend import pending_handlers
from django_domain_events.conf import DEFAULTS, settings
from django_domain_events.declaration.codec import check_event_class
from django_domain_events.declaration.events import DomainEvent, event_class_for, event_classes
from django_domain_events.declaration.receivers import unclaimed_handlers
from django_domain_events.declaration.registry import registry
from django_domain_events.dispatchers import BUILTIN_DISPATCHERS, dispatcher_class
from django_domain_events.exceptions import DispatcherError, EventDefinitionError

PREFIX = "django_domain_events"


@register(Tags.compatibility)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E001 unknown keys, E002 bad values, E003 unknown default dispatcher, E010 the Celery
    dispatcher without Celery."""
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
        ("CELERY_PUBLISH_TIMEOUT", int | float, 0),
        ("CELERY_MAX_RETRY_DELAY", int | float, 0),
        ("RELAY_BATCH_SIZE", int, 1),
        ("RELAY_INTERVAL", int | float, 0),
        ("RELAY_GRACE", int | float, 0),
        ("RELAY_LEASE", int | float, 1),
        ("DISPATCH_TIMEOUT", int | float, 0),
        ("PRUNE_RETENTION_DAYS", int | float, 0),
        ("STATUS_MAX_OWED_AGE", int | float, 0),
        ("METRICS_CACHE_SECONDS", int | float, 0),
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
    limit = configured.get("MAX_RECEIVERS_PER_EVENT")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['MAX_RECEIVERS_PER_EVENT'] is {limit!r}; it must be None or an "
                f"integer >= 1.",
                hint="The default is None (no limit).",
                id=f"{PREFIX}.E002",
            )
        )
    for key, default in (
        ("STATUS_MAX_DEAD", "None (dead deliveries do not make events_status fail)"),
        ("STATUS_MAX_BLOCKED_KEYS", "0 (any blocked ordering key makes events_status fail)"),
    ):
        limit = configured.get(key)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {limit!r}; it must be None or an integer >= 0.",
                    hint=f"The default is {default}.",
                    id=f"{PREFIX}.E002",
                )
            )
    on_dead = configured.get("ORDERED_ON_DEAD", "block")
    if on_dead not in ("block", "skip"):
        errors.append(
            Error(
                f"DOMAIN_EVENTS['ORDERED_ON_DEAD'] is {on_dead!r}; it must be 'block' or 'skip'.",
                hint="The default is 'block': a dead delivery holds up its key until retried.",
                id=f"{PREFIX}.E002",
            )
        )
    for key in ("DEBUG", "ADMIN_ALLOW_DELETE", "METRICS", "TRACING", "ORDERED_RECEIVERS"):
        if key in configured and not isinstance(configured[key], bool):
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {configured[key]!r}; it must be True or False.",
                    hint="The default is False.",
                    id=f"{PREFIX}.E002",
                )
            )
    errors.extend(_celery_setting_errors(configured))
    errors.extend(_observability_errors(configured))
    if "DISPATCHER" in configured:
        errors.extend(_dispatcher_errors(configured["DISPATCHER"], 'DOMAIN_EVENTS["DISPATCHER"]'))
    return errors


def _celery_setting_errors(configured: dict[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key in ("CELERY_APP", "CELERY_QUEUE"):
        value = configured.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is {value!r}; it must be None or a non-empty string.",
                    hint="The default is None; see the Using Celery page of the docs.",
                    id=f"{PREFIX}.E002",
                )
            )
    path = configured.get("CELERY_APP")
    if isinstance(path, str) and path and _celery_installed():
        from django_domain_events.dispatchers.celery.dispatcher import celery_app

        try:
            celery_app(path)
        except DispatcherError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint=(
                        "Give the dotted path of your Celery app, such as 'proj.celery.app', or "
                        "leave CELERY_APP out to use Celery's current app."
                    ),
                    id=f"{PREFIX}.E002",
                )
            )
    return errors


def _observability_errors(configured: dict[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key, module, extra in (
        ("METRICS", "prometheus_client", "prometheus"),
        ("TRACING", "opentelemetry.trace", "otel"),
    ):
        if configured.get(key) is True and importlib.util.find_spec(module) is None:
            errors.append(
                Error(
                    f"DOMAIN_EVENTS[{key!r}] is True, but {module.split('.')[0]} is not installed.",
                    hint=(
                        f'Install it with the extra: pip install "django-domain-outbox[{extra}]", '
                        f"or set DOMAIN_EVENTS[{key!r}] to False."
                    ),
                    id=f"{PREFIX}.E002",
                )
            )
    return errors


def _celery_installed() -> bool:
    # find_spec() looks without importing: checks must not load Celery for projects without it.
    return importlib.util.find_spec("celery") is not None


def _dispatcher_errors(name: Any, where: str) -> list[CheckMessage]:
    if not isinstance(name, str):
        return [
            Error(
                f"{where} is {name!r}; it must be a string.",
                hint=f"Use one of {', '.join(sorted(BUILTIN_DISPATCHERS))} or a dotted path.",
                id=f"{PREFIX}.E003",
            )
        ]
    if name == "celery" and not _celery_installed():
        return [
            Error(
                f"{where} is 'celery', but Celery is not installed.",
                hint='Install it with the extra: pip install "django-domain-outbox[celery]".',
                id=f"{PREFIX}.E010",
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
    """E004 two event classes with one event type, E005 an event class the codec cannot store,
    E015 an ``ordering_key`` that is neither a field name nor a callable."""
    errors: list[CheckMessage] = []
    by_type: dict[str, list[type[DomainEvent]]] = {}
    for cls in event_classes():
        by_type.setdefault(cls.event_type, []).append(cls)
        errors.extend(_ordering_key_errors(cls))
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
    E003 unknown dispatcher, E010 the Celery dispatcher without Celery."""
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


@register(Tags.compatibility)
def check_receiver_limit(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E011 an event type with more receivers than ``MAX_RECEIVERS_PER_EVENT``."""
    limit = _receiver_limit()
    if limit is None:
        return []
    by_type: dict[str, list[str]] = {}
    for name, claims in registry._registry.items():
        by_type.setdefault(claims[-1].event_type, []).append(name)
    return [
        Error(
            f"Event type {event_type!r} has {len(names)} receivers, more than "
            f"DOMAIN_EVENTS['MAX_RECEIVERS_PER_EVENT'] = {limit}: {', '.join(sorted(names))}.",
            hint=(
                "Merge receivers that belong together (a @receiver_class groups them), or "
                "raise the limit."
            ),
            id=f"{PREFIX}.E011",
        )
        for event_type, names in sorted(by_type.items())
        if len(names) > limit
    ]


def _receiver_limit() -> int | None:
    # A malformed limit is E002's to report; this check then has nothing to compare with.
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    if not isinstance(configured, dict):
        return None
    value = configured.get("MAX_RECEIVERS_PER_EVENT")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


@register(Tags.compatibility)
def check_integration_events(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E012 a receiver of an integration event that would run on the ``"sync"`` dispatcher."""
    errors: list[CheckMessage] = []
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    if configured is not None and not isinstance(configured, dict):
        return []  # E002
    default = settings.DISPATCHER
    for receiver in registry.all():
        event_class = (
            receiver.target if isinstance(receiver.target, type) else None
        ) or event_class_for(receiver.event_type)
        if not (
            isinstance(event_class, type)
            and issubclass(event_class, DomainEvent)
            and event_class.event_kind == "integration"
        ):
            continue
        name = receiver.dispatcher or default
        try:
            in_process = dispatcher_class(name).runs_inline
        except (DispatcherError, TypeError):
            continue  # reported as E003
        if in_process:
            where = "its own" if receiver.dispatcher else 'DOMAIN_EVENTS["DISPATCHER"]'
            errors.append(
                Error(
                    f"Receiver {receiver.name!r} of the integration event "
                    f"{event_class.__qualname__} would run in the publishing process: its "
                    f"dispatcher is {name!r} ({where}).",
                    hint=(
                        "Integration events go through a transport: give the receiver "
                        "@receiver(..., dispatcher='celery') (or another transport), or make "
                        "the event a DomainEvent if it is this application's own business."
                    ),
                    obj=receiver.origin,
                    id=f"{PREFIX}.E012",
                )
            )
    return errors


def _ordering_key_errors(cls: type[DomainEvent]) -> list[CheckMessage]:
    declared = cls.ordering_key
    if declared is None or callable(declared) or isinstance(declared, property):
        return []
    try:
        fields = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    except TypeError:
        fields = set()  # not a dataclass
    if isinstance(declared, str) and declared in fields:
        return []
    problem = (
        f"names no field of it (fields: {', '.join(sorted(fields)) or 'none'})"
        if isinstance(declared, str)
        else "is neither a field name nor a callable"
    )
    return [
        Error(
            f"{cls.__qualname__}.ordering_key = {declared!r} {problem}.",
            hint=(
                "Set ordering_key to the name of the field that holds the key, e.g. "
                "ordering_key = 'order_id', or define a method ordering_key(self) that returns it."
            ),
            obj=cls,
            id=f"{PREFIX}.E015",
        )
    ]


@register(Tags.compatibility)
def check_backend_subscriptions(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E013 ``@subscribe_to_event`` handlers waiting for a backend; E014 ``@handles`` methods
    whose class is not a ``@receiver_class``."""
    errors: list[CheckMessage] = []
    pending = pending_handlers()
    if pending:
        handlers = [
            f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)}"
            for handlers in pending.values()
            for handler in handlers
        ]
        errors.append(
            Error(
                f"{len(handlers)} @subscribe_to_event handler(s) wait for an event backend "
                f"and receive nothing: {', '.join(handlers)}.",
                hint=(
                    "Call django_domain_events.backend.init_event_backend(...) at start-up, "
                    "in an AppConfig.ready() for instance, in every process."
                ),
                id=f"{PREFIX}.E013",
            )
        )
    for method in unclaimed_handlers():
        where = f"{getattr(method, '__module__', '?')}.{getattr(method, '__qualname__', method)}"
        errors.append(
            Error(
                f"{where} is decorated with @handles(...) but its class is not decorated with "
                f"@receiver_class, so it receives nothing.",
                hint="Decorate the class with @receiver_class.",
                obj=where,
                id=f"{PREFIX}.E014",
            )
        )
    return errors

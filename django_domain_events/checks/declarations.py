"""System checks of declarations: event classes, receivers, their limits, integration events
and the in-house backend's subscriptions."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any, cast

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, register

from django_domain_events.checks.configuration import PREFIX, dispatcher_errors
from django_domain_events.compat.backend import pending_handlers
from django_domain_events.conf import settings
from django_domain_events.declaration.codec import check_event_class
from django_domain_events.declaration.events import DomainEvent, event_class_for, event_classes
from django_domain_events.declaration.namespaces import receiver_limit
from django_domain_events.declaration.receivers import unclaimed_handlers
from django_domain_events.declaration.registry import DEFAULT_NAMESPACE, Receiver, registry
from django_domain_events.dispatchers import dispatcher_class
from django_domain_events.exceptions import DispatcherError, EventDefinitionError
from django_domain_events.integration.consumers import CONSUMER_NAMESPACE


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
        elif not _accepts_event(receiver.func, receiver.dry_run):
            dry_run = " and commit as a keyword (it says dry_run=True)" if receiver.dry_run else ""
            errors.append(
                Error(
                    f"Receiver {receiver.name!r} cannot be called with the event as its only "
                    f"positional argument{dry_run}.",
                    hint=(
                        "Give it the signature (event, *, commit) or (event, envelope, *, "
                        "commit); any other parameter needs a default."
                        if receiver.dry_run
                        else "Give it the signature (event) or (event, envelope); any other "
                        "parameter needs a default."
                    ),
                    obj=receiver.origin,
                    id=f"{PREFIX}.E009",
                )
            )
        if receiver.dispatcher is not None:
            errors.extend(
                dispatcher_errors(receiver.dispatcher, f"Receiver {receiver.name!r} dispatcher")
            )
    return errors


def _accepts_event(func: Any, dry_run: bool = False) -> bool:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return True  # builtins and C callables: nothing to check
    kwargs: dict[str, Any] = {"envelope": None} if "envelope" in signature.parameters else {}
    if dry_run:
        kwargs["commit"] = True
    try:
        signature.bind(object(), **kwargs)
    except TypeError:
        return False
    return True


@register(Tags.compatibility)
def check_receiver_limit(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E011 an event type with more receivers in a namespace (wildcard receivers included) than
    the namespace's limit: ``MAX_RECEIVERS_PER_EVENT`` for the default one."""
    errors: list[CheckMessage] = []
    namespaces = sorted({receiver.namespace for receiver in registry.all()})
    declared = {cls.event_type for cls in event_classes()}
    for namespace in namespaces:
        limit, where = receiver_limit(namespace)
        if limit is None:
            continue
        named = {
            receiver.event_type
            for receiver in registry.all()
            if receiver.namespace == namespace and not receiver.is_wildcard
        }
        for event_type in sorted(named | declared):
            names = sorted(r.name for r in registry.receivers_for(event_type, namespace))
            if len(names) <= limit:
                continue
            place = "" if namespace == DEFAULT_NAMESPACE else f" in namespace {namespace!r}"
            errors.append(
                Error(
                    f"Event type {event_type!r} has {len(names)} receivers{place}, more than "
                    f"{where} = {limit}: {', '.join(names)}.",
                    hint=(
                        "Merge receivers that belong together (a @receiver_class groups them), "
                        "or raise the limit."
                    ),
                    id=f"{PREFIX}.E011",
                )
            )
    return errors


@register(Tags.compatibility)
def check_integration_events(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E012 a receiver of an integration event that would run on the ``"sync"`` dispatcher,
    unless it says ``allow_sync=True``."""
    errors: list[CheckMessage] = []
    configured = getattr(django_settings, "DOMAIN_EVENTS", None)
    if configured is not None and not isinstance(configured, dict):
        return []  # E002
    default = settings.DISPATCHER
    for receiver in registry.all():
        if receiver.allow_sync or receiver.namespace == CONSUMER_NAMESPACE:
            # A @consumer runs where consume_events takes the message, by design.
            continue
        integration = [cls for cls in _classes_of(receiver) if cls.event_kind == "integration"]
        if not integration:
            continue
        event_class = integration[0]
        name = receiver.dispatcher or default
        try:
            in_process = dispatcher_class(name).runs_inline
        except (DispatcherError, TypeError):
            continue  # reported as E003
        if in_process:
            where = "its own" if receiver.dispatcher else 'DOMAIN_EVENTS["DISPATCHER"]'
            what = f"the integration event {event_class.__qualname__}"
            if receiver.is_wildcard:
                listed = ", ".join(cls.event_type for cls in integration)
                what = f"{receiver.event_type!r}, which matches the integration events {listed},"
            errors.append(
                Error(
                    f"Receiver {receiver.name!r} of {what} would run in the publishing "
                    f"process: its dispatcher is {name!r} ({where}).",
                    hint=(
                        "Integration events go through a transport: give the receiver "
                        "@receiver(..., dispatcher='celery') (or 'deferred', 'tasks', another "
                        "transport), or make the event a DomainEvent if it is this "
                        "application's own business. To run it in the publishing process "
                        "anyway, say so: @receiver(..., allow_sync=True)."
                    ),
                    obj=receiver.origin,
                    id=f"{PREFIX}.E012",
                )
            )
    return errors


def _classes_of(receiver: Receiver) -> list[type[DomainEvent]]:
    """The event classes whose events ``receiver`` gets (every one a wildcard matches)."""
    if receiver.is_wildcard:
        return sorted(
            (cls for cls in event_classes() if receiver.matches(cls.event_type)),
            key=lambda cls: cls.event_type,
        )
    target = receiver.target if isinstance(receiver.target, type) else None
    event_class = target or event_class_for(receiver.event_type)
    if isinstance(event_class, type) and issubclass(event_class, DomainEvent):
        return [event_class]
    return []


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

"""System checks of wildcard receivers: patterns that match nothing, functions that would run
twice for one event, and annotations that cannot take every event a pattern matches."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_domain_events.checks.configuration import PREFIX
from django_domain_events.declaration.events import DomainEvent, NamedEvent, event_classes
from django_domain_events.declaration.registry import Receiver, registry


def _declared_types() -> tuple[set[str], set[str]]:
    """The event types of event classes, and the named ones some receiver names exactly."""
    classes = {cls.event_type for cls in event_classes()}
    named = {
        receiver.event_type
        for receiver in registry.all()
        if not receiver.is_wildcard and receiver.event_type not in classes
    }
    return classes, named


@register(Tags.compatibility)
def check_wildcard_receivers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W030 a ``"prefix.*"`` wildcard that matches no declared event type, E030 one function
    receiving an event type both through a wildcard and by name, E031 a wildcard receiver whose
    event parameter's annotation refuses some of the events it matches."""
    wildcards = [receiver for receiver in registry.all() if receiver.is_wildcard]
    if not wildcards:
        return []
    classes, named = _declared_types()
    messages: list[CheckMessage] = []
    for receiver in wildcards:
        matched = sorted(
            event_type for event_type in classes | named if receiver.matches(event_type)
        )
        if not matched and receiver.event_type != "*":
            messages.append(
                Warning(
                    f"Wildcard receiver {receiver.name!r} listens to {receiver.event_type!r}, "
                    f"which matches no event class and no event type another receiver names.",
                    hint=(
                        f"Check the prefix: {receiver.event_type!r} matches event types that "
                        f"start with {receiver.event_type[:-1]!r}. Named events published under "
                        f"it still reach it; silence this check if that is the intent."
                    ),
                    obj=receiver.origin,
                    id=f"{PREFIX}.W030",
                )
            )
        messages.extend(_twice(receiver))
        messages.extend(_refused(receiver, matched, classes))
    return messages


def _same_function(a: Receiver, b: Receiver) -> bool:
    return a.func is b.func or a.origin == b.origin


def _twice(wildcard: Receiver) -> list[CheckMessage]:
    overlapping = [
        other
        for other in registry.all()
        if other.name != wildcard.name
        and other.namespace == wildcard.namespace
        and _same_function(other, wildcard)
        and wildcard.matches(other.event_type)
    ]
    return [
        Error(
            f"{wildcard.origin} receives {other.event_type!r} twice: as receiver "
            f"{wildcard.name!r} (through the wildcard {wildcard.event_type!r}) and as receiver "
            f"{other.name!r}; each event would get two deliveries for it.",
            hint=(
                f"Remove the @receiver({other.event_type!r}) registration, or give the event "
                f"type its own function."
            ),
            obj=wildcard.origin,
            id=f"{PREFIX}.E030",
        )
        for other in overlapping
    ]


def _accepted(func: Any) -> tuple[type, ...] | None:
    """The classes the event parameter of ``func`` is annotated with, or None for any."""
    try:
        first = next(iter(inspect.signature(func).parameters.values()), None)
        hints = typing.get_type_hints(func)
    except Exception:
        return None  # no signature, or annotations that do not resolve: nothing to check
    if first is None or first.name not in hints:
        return None
    hint = hints[first.name]
    members = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    if not all(isinstance(member, type) for member in members):
        return None  # a TypeVar, a Protocol alias, Any: not ours to judge
    if object in members:
        return None
    return tuple(members)


def _refused(receiver: Receiver, matched: list[str], classes: set[str]) -> list[CheckMessage]:
    accepted = _accepted(receiver.func)
    if accepted is None:
        return []
    by_type = {cls.event_type: cls for cls in event_classes()}
    refused = []
    for event_type in matched:
        handed: type = by_type[event_type] if event_type in classes else NamedEvent
        if not issubclass(handed, accepted):
            refused.append(f"{event_type} ({handed.__name__})")
    if not refused:
        return []
    annotation = " | ".join(member.__name__ for member in accepted)
    return [
        Error(
            f"Wildcard receiver {receiver.name!r} is annotated to take {annotation}, but "
            f"{receiver.event_type!r} also hands it: {', '.join(refused)}.",
            hint=(
                "Annotate the event parameter with a type every matched event is, e.g. "
                f"{DomainEvent.__qualname__} | {NamedEvent.__qualname__}, or narrow the pattern."
            ),
            obj=receiver.origin,
            id=f"{PREFIX}.E031",
        )
    ]

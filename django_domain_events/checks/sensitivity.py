"""System checks of sensitive fields: event classes' ``data_subject``, and
``declare_sensitive()`` calls."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_domain_events.declaration.events import DomainEvent, event_class_for, event_classes
from django_domain_events.declaration.sensitivity import (
    ERASED,
    declared_named_events,
    sensitive_field_names,
    sensitive_field_types,
    spell,
)

PREFIX = "django_domain_events"


@register(Tags.compatibility)
def check_sensitive_fields(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E070 a ``data_subject`` naming no field, E071 ``declare_sensitive()`` of a typed event,
    W072 an erasable sensitive field whose type cannot hold the erasure marker, W073 an
    ordering key taken from a sensitive field."""
    errors: list[CheckMessage] = []
    for cls in sorted(event_classes(), key=lambda cls: cls.event_type):
        where = f"{cls.__module__}.{cls.__qualname__}"
        key = cls.ordering_key
        if isinstance(key, str) and key in sensitive_field_names(cls):
            errors.append(
                Warning(
                    f"{where}.ordering_key = {key!r} names a sensitive field: its value is "
                    f"stored as the event's ordering key, a column the admin shows and "
                    f"erase_sensitive does not erase.",
                    hint="Order by an id instead (the customer's id, not their email).",
                    obj=cls,
                    id=f"{PREFIX}.W073",
                )
            )
        if cls.data_subject is None:
            continue
        problem = _subject_problem(cls)
        if problem is not None:
            errors.append(
                Error(
                    f"{where}.data_subject = {cls.data_subject!r}: {problem}.",
                    hint='Name the field holding the subject\'s id: data_subject = "user_id" '
                    '(dotted into a nested dataclass: "customer.id").',
                    obj=cls,
                    id=f"{PREFIX}.E070",
                )
            )
            continue
        for path, tp in sensitive_field_types(cls):
            if not _holds_str(tp):
                errors.append(
                    Warning(
                        f"{where}.{spell(path)} is sensitive and erasable, but its type "
                        f"{_name(tp)} cannot hold {ERASED!r}: a delivery of one of its events "
                        f"that runs after erase_sensitive cannot decode it and goes dead.",
                        hint=f"Declare it {_name(tp)} | str, or leave its events' deliveries "
                        f"settled before erasing.",
                        obj=cls,
                        id=f"{PREFIX}.W072",
                    )
                )
    for event_type in sorted(declared_named_events()):
        declaring = event_class_for(event_type)
        if declaring is not None:
            errors.append(
                Error(
                    f"declare_sensitive({event_type!r}) declares a typed event: "
                    f"{declaring.__module__}.{declaring.__qualname__} has that event_type, and "
                    f"its own fields decide what is sensitive.",
                    hint="Remove the declare_sensitive() call; mark the class's fields "
                    "Annotated[..., Sensitive] and set data_subject on the class.",
                    obj=declaring,
                    id=f"{PREFIX}.E071",
                )
            )
    return errors


def _subject_problem(cls: type[DomainEvent]) -> str | None:
    subject = cls.data_subject
    if not isinstance(subject, str) or not subject:
        return "it must be a field name (a non-empty string) or None"
    current: Any = cls
    for step in subject.split("."):
        current = _dataclass_in(current)
        if current is None:
            return f"{step!r} is not inside a dataclass field"
        try:
            hints = typing.get_type_hints(current)
        except Exception:
            return None  # reported by the codec's checks of the class
        if step not in {item.name for item in dataclasses.fields(current)}:
            return f"{current.__name__} has no field {step!r}"
        current = hints.get(step)
    return None


def _dataclass_in(tp: Any) -> type | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        found = [_dataclass_in(arg) for arg in typing.get_args(tp) if arg is not type(None)]
        return found[0] if len(found) == 1 else None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    return None


def _holds_str(tp: Any) -> bool:
    if tp is str or tp is Any:
        return True
    if typing.get_origin(tp) is typing.Annotated:
        return _holds_str(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_holds_str(arg) for arg in typing.get_args(tp))
    return False


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp).replace("typing.", "")

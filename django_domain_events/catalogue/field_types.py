"""Field types as the catalogue names them: one canonical string per declared type (``int |
None``, ``list[Address]``), so two catalogues can be compared field by field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django_domain_events.exceptions import EventDefinitionError

_NAMES: Mapping[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "None",
    None: "None",
    Decimal: "Decimal",
    uuid.UUID: "UUID",
    dt.datetime: "datetime",
    dt.date: "date",
    dt.time: "time",
    Any: "Any",
    list: "list",
    tuple: "tuple",
    dict: "dict",
}


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of an event or of a dataclass nested in one."""

    name: str
    type: str
    """Its canonical type, such as ``"int | None"``."""
    required: bool
    """Whether it has no default, so a payload without it cannot be read."""

    def as_dict(self) -> dict[str, Any]:
        """The field as JSON-ready data."""
        return {"name": self.name, "type": self.type, "required": self.required}


def type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of dataclass ``cls``; ``EventDefinitionError`` if they cannot
    be resolved."""
    try:
        return typing.get_type_hints(cls)
    except Exception as exc:
        raise EventDefinitionError(
            f"{cls.__qualname__}: its field annotations cannot be resolved ({exc}). Define the "
            f"referenced types at module level."
        ) from exc


def is_required(field: dataclasses.Field[Any]) -> bool:
    """Whether a dataclass field has neither a default nor a default factory."""
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def fields_of(cls: type, nested: dict[str, dict[str, Any]]) -> tuple[Field, ...]:
    """The fields of dataclass ``cls`` in declaration order; the dataclasses and enums their
    types name are added to ``nested`` by name (see ``type_name``)."""
    hints = type_hints(cls)
    return tuple(
        Field(field.name, type_name(hints[field.name], nested), is_required(field))
        for field in dataclasses.fields(cls)
    )


def type_name(tp: Any, nested: dict[str, dict[str, Any]]) -> str:
    """The canonical name of declared type ``tp``. A dataclass or enum is named by its
    qualified name, and described in ``nested``: ``{"kind": "dataclass", "fields": [...]}``
    or ``{"kind": "enum", "values": [...]}``."""
    if tp in _NAMES:
        return _NAMES[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        # Sorted: ``None | int`` and ``int | None`` are one type.
        return " | ".join(sorted({type_name(arg, nested) for arg in args}))
    if origin is typing.Literal:
        return f"Literal[{', '.join(sorted(repr(arg) for arg in args))}]"
    if origin in (list, tuple, dict):
        parts = ["..." if arg is Ellipsis else type_name(arg, nested) for arg in args]
        return f"{origin.__name__}[{', '.join(parts)}]"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        nested.setdefault(
            tp.__qualname__,
            {"kind": "enum", "values": [member.value for member in tp]},
        )
        return tp.__qualname__
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp.__qualname__ not in nested:
            # Named before its fields are walked, so a dataclass that refers to itself ends.
            nested[tp.__qualname__] = {"kind": "dataclass", "fields": []}
            nested[tp.__qualname__]["fields"] = [field.as_dict() for field in fields_of(tp, nested)]
        return tp.__qualname__
    return getattr(tp, "__qualname__", None) or repr(tp).replace("typing.", "")

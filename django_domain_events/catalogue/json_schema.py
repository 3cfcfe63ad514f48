"""JSON Schema (draft 2020-12) of an event class: the shape of the payload ``publish()`` writes.

Objects do not forbid properties they do not list: adding an optional field is an additive
change, and a consumer validating with an older schema keeps accepting the newer payloads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
import uuid
from decimal import Decimal
from typing import Any

from django_domain_events.catalogue.building import description_of
from django_domain_events.catalogue.field_types import is_required, type_hints
from django_domain_events.declaration.events import DomainEvent

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# What the codec (msgspec) writes for each type; a Decimal is written as its str(), which may
# use an exponent ("1E+2").
_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    None: {"type": "null"},
    Decimal: {
        "type": "string",
        "format": "decimal",
        "pattern": r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$",
    },
    uuid.UUID: {"type": "string", "format": "uuid"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
    dt.time: {"type": "string", "format": "time"},
    Any: {},
    list: {"type": "array"},
    tuple: {"type": "array"},
    dict: {"type": "object"},
}


def schema_id(event_class: type[DomainEvent]) -> str:
    """The ``$id`` of the schema of ``event_class``: its event type and version."""
    return f"urn:django-domain-events:{event_class.event_type}:{event_class.version}"


def event_schema(event_class: type[DomainEvent]) -> dict[str, Any]:
    """The JSON Schema of the payloads of ``event_class``. Nested dataclasses and enums are in
    ``$defs``; ``$id`` makes its references resolve inside it wherever it is embedded."""
    definitions: dict[str, dict[str, Any]] = {}
    root = _object_schema(event_class, event_class, definitions)
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": schema_id(event_class),
        "title": event_class.event_type,
    }
    description = description_of(event_class)
    if description:
        schema["description"] = description
    schema.update(root)
    schema["x-event-type"] = event_class.event_type
    schema["x-event-version"] = event_class.version
    if definitions:
        schema["$defs"] = dict(sorted(definitions.items()))
    return schema


def _object_schema(cls: type, root: type, definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    hints = type_hints(cls)
    properties: dict[str, Any] = {}
    required = []
    for field in dataclasses.fields(cls):
        properties[field.name] = _schema(hints[field.name], root, definitions)
        if is_required(field):
            required.append(field.name)
        elif type(field.default) in (str, int, float, bool) or field.default is None:
            properties[field.name] = {**properties[field.name], "default": field.default}
    return {"type": "object", "properties": properties, "required": required}


def _schema(tp: Any, root: type, definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [_schema(arg, root, definitions) for arg in args]}
    if origin is typing.Literal:
        values = [arg.value if isinstance(arg, enum.Enum) else arg for arg in args]
        return {"const": values[0]} if len(values) == 1 else {"enum": values}
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return {"type": "array", "items": _schema(args[0], root, definitions)}
    if origin is tuple:
        return {
            "type": "array",
            "prefixItems": [_schema(arg, root, definitions) for arg in args],
            "items": False,
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], root, definitions)}
    if tp is root:
        return {"$ref": "#"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        definitions.setdefault(
            tp.__qualname__, {"title": tp.__qualname__, "enum": [member.value for member in tp]}
        )
        return {"$ref": f"#/$defs/{tp.__qualname__}"}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp.__qualname__ not in definitions:
            # Named before its fields are walked, so a dataclass that refers to itself ends.
            definitions[tp.__qualname__] = {}
            definitions[tp.__qualname__] = {
                "title": tp.__qualname__,
                **_object_schema(tp, root, definitions),
            }
        return {"$ref": f"#/$defs/{tp.__qualname__}"}
    raise TypeError(
        f"{tp!r} has no JSON Schema here: the codec cannot store it (system check "
        f"django_domain_events.E005 reports the field)."
    )

"""Checking values against an event's declared field types, before they are encoded.

msgspec's encoder does not look at annotations: without this check a ``float`` in a ``Decimal``
field would be stored and come back as a different type. A checker is compiled once per event
class (and per nested dataclass) from its type hints; it raises ``Mismatch`` naming the path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django_domain_events.exceptions import EventDefinitionError

Checker = Callable[[Any, str], None]

MAX_PAYLOAD_DEPTH = 100
"""Deepest nesting of objects and arrays a payload may have, the payload itself counting as
one level. Far below what the JSON decoders and Python's recursion limit can read back, so a
payload that is published can always be read, and one deeper is refused, at publish or when
read from a stored row."""

MARIADB_PAYLOAD_DEPTH = 31
"""Deepest nesting MariaDB stores: the ``JSON_VALID()`` check on its JSON columns refuses a
document nested 32 levels or deeper, so on MariaDB publish refuses such a payload itself."""


class Mismatch(Exception):
    def __init__(self, path: str, expected: str, value: Any, hint: str = "") -> None:
        self.path, self.expected, self.value, self.hint = path, expected, value, hint


def describe(value: Any) -> str:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{type(value).__name__} {shown}"


_LEAVES = frozenset(
    {str, int, float, bool, type(None), Decimal, uuid.UUID, dt.datetime, dt.date, dt.time}
)
"""Types of values that hold no others: the depth walk does not look into them."""

_Link = tuple[Any, Any, bool] | None
"""How the walk reached a container: (the link of its parent, its key or index or field name,
whether that is a field name)."""


def too_deep(value: Any, limit: int = MAX_PAYLOAD_DEPTH) -> str | None:
    """The path of the first container in ``value`` nested more than ``limit`` levels deep
    (``value`` itself being level one), or None. Walks with a stack of its own, not
    recursion, so any depth (or a container holding itself) gets an answer; the path is only
    spelled out when there is one to report."""
    stack: list[tuple[Any, int, _Link]] = [(value, 1, None)]
    while stack:
        item, depth, link = stack.pop()
        kind = type(item)
        if kind is dict:
            pairs: Iterable[tuple[Any, Any]] = item.items()
            attributes = False
        elif kind is list or kind is tuple:
            pairs, attributes = enumerate(item), False
        elif kind in _LEAVES or not hasattr(kind, "__dataclass_fields__"):
            continue
        else:
            pairs = [(name, getattr(item, name)) for name in kind.__dataclass_fields__]
            attributes = True
        if depth > limit:
            return _spelled(link)
        for step, child in pairs:
            if type(child) not in _LEAVES:
                stack.append((child, depth + 1, (link, step, attributes)))
    return None


def _spelled(link: _Link) -> str:
    steps: list[str] = []
    while link is not None:
        link, step, attribute = link
        steps.append(f".{step}" if attribute else f"[{step!r}]")
    return "".join(reversed(steps))


def _hint_for(expected: type, value: Any) -> str:
    if expected is Decimal and isinstance(value, float | int | str) and not isinstance(value, bool):
        return f" — pass Decimal({str(value)!r})"
    if expected is uuid.UUID and isinstance(value, str):
        return f" — pass uuid.UUID({value!r})"
    if expected is float and isinstance(value, Decimal):
        return " — pass float(value), or declare the field as Decimal"
    return ""


def _check_str(value: Any, path: str) -> None:
    if type(value) is not str:
        raise Mismatch(path, "str", value)
    if "\x00" in value:
        raise Mismatch(
            path,
            "str without NUL characters",
            value,
            " — PostgreSQL's JSON type cannot store \\u0000; strip it or encode the bytes",
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Mismatch(
                path, "str encodable as UTF-8", value, " — it holds a lone surrogate"
            ) from None


def _check_key(key: Any, path: str) -> None:
    if type(key) is not str:
        raise Mismatch(path, "str key", key, " — JSON object keys are strings")
    _check_str(key, path)


def _check_offset(value: dt.datetime | dt.time, path: str, kind: str) -> None:
    offset = value.utcoffset()
    if offset is not None and offset % dt.timedelta(minutes=1):
        raise Mismatch(
            path,
            f"{kind} with a whole-minute UTC offset",
            value,
            " — JSON timestamps carry offsets in minutes; convert it to UTC first",
        )


def _exact(tp: type, name: str | None = None) -> Checker:
    label = name or tp.__name__

    def check(value: Any, path: str) -> None:
        if type(value) is not tp:
            raise Mismatch(path, label, value, _hint_for(tp, value))

    return check


def _check_float(value: Any, path: str) -> None:
    # int is accepted for float fields (the numeric tower); it is received as an equal float.
    if type(value) is float:
        if not math.isfinite(value):
            raise Mismatch(path, "finite float", value, " — JSON has no NaN or infinity")
    elif type(value) is not int:
        raise Mismatch(path, "float", value, _hint_for(float, value))


def _check_decimal(value: Any, path: str) -> None:
    if type(value) is not Decimal:
        raise Mismatch(path, "Decimal", value, _hint_for(Decimal, value))
    if not value.is_finite():
        raise Mismatch(path, "finite Decimal", value)


def _check_none(value: Any, path: str) -> None:
    if value is not None:
        raise Mismatch(path, "None", value)


def _check_uuid(value: Any, path: str) -> None:
    if not isinstance(value, uuid.UUID):
        raise Mismatch(path, "UUID", value, _hint_for(uuid.UUID, value))


def _check_datetime(value: Any, path: str) -> None:
    if not isinstance(value, dt.datetime):
        raise Mismatch(path, "datetime", value)
    _check_offset(value, path, "datetime")


def _check_date(value: Any, path: str) -> None:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        hint = " — pass value.date()" if isinstance(value, dt.datetime) else ""
        raise Mismatch(path, "date", value, hint)


def _check_time(value: Any, path: str) -> None:
    if not isinstance(value, dt.time):
        raise Mismatch(path, "time", value)
    _check_offset(value, path, "time")


def check_json(value: Any, path: str, *, tuples: bool = True) -> None:
    """Plain JSON values: what a named event's payload (or an ``Any`` field) may hold.

    With ``tuples=False`` (untyped parts of typed events) a tuple is refused: nothing tells the
    decoder to turn the JSON array back into a tuple.
    """
    kind = type(value)
    if kind is str:
        _check_str(value, path)
    elif kind is int or kind is bool or value is None:
        return
    elif kind is float:
        _check_float(value, path)
    elif kind is list or (kind is tuple and tuples):
        for index, item in enumerate(value):
            check_json(item, f"{path}[{index}]", tuples=tuples)
    elif kind is dict:
        for key, item in value.items():
            _check_key(key, f"{path}[{key!r}]")
            check_json(item, f"{path}[{key!r}]", tuples=tuples)
    elif kind is tuple:
        raise Mismatch(
            path,
            "JSON value",
            value,
            " — an untyped field reads a tuple back as a list: pass a list, or declare the "
            "field as tuple[...]",
        )
    else:
        raise Mismatch(path, "JSON value", value, _json_hint(value))


def _json_hint(value: Any) -> str:
    # Payloads of the in-house backend's API held any Python object: each hint names the
    # conversion that keeps the handler's reading of it, or the typed event that keeps its type.
    kind = type(value)
    if isinstance(value, Decimal | uuid.UUID | dt.date | dt.time):
        return f" — pass str(value), or declare a DomainEvent class with a {kind.__name__} field"
    if isinstance(value, enum.Enum):
        return f" — pass value.value, or declare a DomainEvent class with a {kind.__name__} field"
    if isinstance(value, set | frozenset):
        return " — pass sorted(value) (a list), or declare a DomainEvent class with a list field"
    if isinstance(value, bytes | bytearray):
        return " — pass value.decode() or a base64 string: JSON holds text, not bytes"
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return (
            " — pass the primary key (value.pk) and load the row in the handler: the row may "
            "have changed by the time the handler runs"
        )
    return " — convert it to str, int, float, bool, None, list or dict"


def _check_typed_json(value: Any, path: str) -> None:
    check_json(value, path, tuples=False)


_SCALARS: dict[Any, Checker] = {
    str: _check_str,
    int: _exact(int),
    bool: _exact(bool),
    float: _check_float,
    Decimal: _check_decimal,
    type(None): _check_none,
    None: _check_none,
    uuid.UUID: _check_uuid,
    dt.datetime: _check_datetime,
    dt.date: _check_date,
    dt.time: _check_time,
    Any: _check_typed_json,
}


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or repr(tp).replace("typing.", "")


def _compile(tp: Any, owner: str) -> Checker:
    """Build the checker for one declared type; unsupported types are definition errors."""
    if tp in _SCALARS:
        return _SCALARS[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _compile_union(
            [_compile(arg, owner) for arg in args], " | ".join(map(_type_name, args))
        )
    if origin is typing.Literal:
        allowed = tuple(args)

        def check_literal(value: Any, path: str) -> None:
            if not any(type(value) is type(option) and value == option for option in allowed):
                raise Mismatch(path, f"one of {allowed!r}", value)

        return check_literal
    if tp is list or tp is dict or tp is tuple:
        return _check_json_container(tp)
    if origin is list:
        return _compile_sequence(list, _compile(args[0], owner) if args else _check_typed_json)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _compile_sequence(tuple, _compile(args[0], owner))
        return _compile_fixed_tuple([_compile(arg, owner) for arg in args])
    if origin is dict:
        if args and args[0] is not str:
            raise EventDefinitionError(
                f"{owner}: dict keys must be str (JSON objects have string keys), got {tp!r}."
            )
        return _compile_dict(_compile(args[1], owner) if args else _check_typed_json)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _exact(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return compile_dataclass(tp)
    raise EventDefinitionError(
        f"{owner}: field type {_type_name(tp)} cannot round-trip through JSON. Use str, int, "
        f"float, bool, None, Decimal, UUID, datetime, date, time, an Enum, list, tuple, "
        f"dict[str, ...], a nested dataclass, or an Optional/Union of these."
    )


def _compile_union(checkers: list[Checker], label: str) -> Checker:
    def check_union(value: Any, path: str) -> None:
        deepest: Mismatch | None = None
        for checker in checkers:
            try:
                checker(value, path)
            except Mismatch as mismatch:
                if mismatch.path != path and (
                    deepest is None or len(mismatch.path) > len(deepest.path)
                ):
                    deepest = mismatch
                continue
            return
        # A member that matched the value's type but not its contents says more than the union.
        raise deepest or Mismatch(path, label, value)

    return check_union


def _check_json_container(tp: type) -> Checker:
    # A bare list/tuple/dict annotation: the container's type is declared, its contents are not.
    def check_container(value: Any, path: str) -> None:
        if type(value) is not tp:
            raise Mismatch(path, tp.__name__, value)
        if tp is dict:
            _check_typed_json(value, path)
        else:
            for index, item in enumerate(typing.cast("Iterable[Any]", value)):
                _check_typed_json(item, f"{path}[{index}]")

    return check_container


def _compile_sequence(kind: type, item: Checker) -> Checker:
    def check_sequence(value: Any, path: str) -> None:
        if type(value) is not kind:
            raise Mismatch(path, kind.__name__, value)
        for index, element in enumerate(typing.cast("Iterable[Any]", value)):
            item(element, f"{path}[{index}]")

    return check_sequence


def _compile_fixed_tuple(items: list[Checker]) -> Checker:
    def check_tuple(value: Any, path: str) -> None:
        if type(value) is not tuple or len(value) != len(items):
            raise Mismatch(path, f"tuple of {len(items)}", value)
        for index, (checker, element) in enumerate(zip(items, value, strict=True)):
            checker(element, f"{path}[{index}]")

    return check_tuple


def _compile_dict(item: Checker) -> Checker:
    def check_dict(value: Any, path: str) -> None:
        if type(value) is not dict:
            raise Mismatch(path, "dict", value)
        for key, element in value.items():
            _check_key(key, f"{path}[{key!r}]")
            item(element, f"{path}[{key!r}]")

    return check_dict


dataclass_checkers: dict[type, Checker] = {}


def compile_dataclass(cls: type) -> Checker:
    if cls in dataclass_checkers:
        return dataclass_checkers[cls]
    fields: list[tuple[str, Checker]] = []

    def check_dataclass(value: Any, path: str) -> None:
        if type(value) is not cls:
            raise Mismatch(path, cls.__qualname__, value)
        for name, checker in fields:
            checker(getattr(value, name), f"{path}.{name}")

    # Registered before compiling the fields so a self-referencing dataclass terminates.
    dataclass_checkers[cls] = check_dataclass
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        del dataclass_checkers[cls]
        raise EventDefinitionError(
            f"{cls.__qualname__}: its field annotations cannot be resolved ({exc}). Define the "
            f"referenced types at module level."
        ) from exc
    try:
        for dc_field in dataclasses.fields(cls):
            fields.append(
                (
                    dc_field.name,
                    _compile(hints[dc_field.name], f"{cls.__qualname__}.{dc_field.name}"),
                )
            )
    except Exception:
        del dataclass_checkers[cls]
        raise
    return check_dataclass

"""Sensitive fields: which parts of an event's payload hold personal data, so that the admin,
logs, errors and ``repr()`` show them redacted, and ``erase_sensitive`` can blank them later.

A typed event marks a field ``Annotated[str, Sensitive]`` (or ``field(metadata={"sensitive":
True})``) and names its data subject with ``data_subject = "user_id"``. A plain named event
is declared once with ``declare_sensitive("user.signed_up", fields=("email",),
data_subject="user_id")``. A field's path is its name, dotted into nested dataclasses or
objects (``"customer.email"``), with ``[]`` for each item of a list (``"guests[].email"``).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import types
import typing
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from django_domain_events.declaration.events import DomainEvent, NamedEvent, event_class_for
from django_domain_events.declaration.identifiers import identifier_problem

REDACTED = "[redacted]"
"""What the admin, logs and errors show in place of a sensitive value."""

ERASED = "[erased]"
"""What ``erase_sensitive`` stores in place of a sensitive value."""

ITEMS = "[]"
"""The path step that stands for each item of a list."""

Path = tuple[str, ...]
"""A field's path: keys, and ``ITEMS`` for each item of a list."""

# Shorter values are not searched for in error texts: "7" or "ab" would blank half a traceback.
MIN_SCRUBBED_LENGTH = 3


class Sensitive:
    """Marks a dataclass field sensitive: ``email: Annotated[str, Sensitive]``."""


METADATA_KEY = "sensitive"
"""The ``dataclasses.field(metadata=...)`` key that marks a field sensitive too."""


@dataclass(frozen=True)
class Sensitivity:
    """What one event type declares: the paths of its sensitive fields and of its data
    subject (None: it cannot be found for erasure)."""

    fields: tuple[Path, ...]
    data_subject: Path | None = None


NOTHING = Sensitivity(fields=())


def spell(path: Path) -> str:
    """``path`` as written in declarations: ``"guests[].email"``."""
    spelled = ""
    for step in path:
        spelled += step if step == ITEMS or not spelled else f".{step}"
    return spelled


def parse_path(text: str, what: str) -> Path:
    """The path that ``text`` spells (``"customer.email"``, ``"guests[].email"``); raises
    ``ValueError`` naming ``what`` when it spells none."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what}: {text!r} is not a field path; give a string like 'email'.")
    steps: list[str] = []
    for part in text.split("."):
        name = part
        items = 0
        while name.endswith(ITEMS):
            name, items = name[: -len(ITEMS)], items + 1
        if not name or ITEMS[0] in name or ITEMS[1] in name:
            raise ValueError(
                f"{what}: {text!r} is not a field path; write names joined by dots, with [] "
                f"after a list's name for its items, like 'customer.email' or 'guests[].email'."
            )
        steps.append(name)
        steps.extend([ITEMS] * items)
    return tuple(steps)


# Declarations of plain named events ---------------------------------------------------------

_declared: dict[str, Sensitivity] = {}


def declare_sensitive(
    event_type: str, fields: Iterable[str], *, data_subject: str | None = None
) -> Sensitivity:
    """Declare the sensitive fields of the plain named event ``event_type`` and the field
    naming its data subject. Declaring it again replaces the earlier declaration. Call it
    where the module is imported at start-up (beside the receivers, or in ``ready()``)."""
    what = f"declare_sensitive({event_type!r})"
    if not isinstance(event_type, str) or not event_type:
        raise ValueError(f"{what}: give the event type as a non-empty string.")
    problem = identifier_problem(event_type)
    if problem is not None:
        raise ValueError(f"{what}: the event type {problem}.")
    if isinstance(fields, str):
        raise ValueError(
            f"{what}: fields={fields!r} is one string; give a tuple of paths: fields=({fields!r},)."
        )
    paths = tuple(parse_path(text, f"{what}, fields") for text in fields)
    if not paths:
        raise ValueError(f"{what}: give at least one field path in fields=.")
    subject = None if data_subject is None else parse_path(data_subject, f"{what}, data_subject")
    if subject is not None and ITEMS in subject:
        raise ValueError(
            f"{what}: data_subject={data_subject!r} goes through a list; name one field that "
            f"holds the subject's id, like 'user_id' or 'customer.id'."
        )
    declared = _declared[event_type] = Sensitivity(fields=paths, data_subject=subject)
    return declared


def declared_named_events() -> dict[str, Sensitivity]:
    """The plain named events declared with ``declare_sensitive()``, by event type."""
    return dict(_declared)


# Typed events ----------------------------------------------------------------------------------

_of_class: weakref.WeakKeyDictionary[type, Sensitivity] = weakref.WeakKeyDictionary()
_fields_of_class: weakref.WeakKeyDictionary[type, frozenset[str]] = weakref.WeakKeyDictionary()


def _marked(tp: Any) -> bool:
    if typing.get_origin(tp) is typing.Annotated:
        if any(mark is Sensitive or isinstance(mark, Sensitive) for mark in tp.__metadata__):
            return True
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_marked(arg) for arg in typing.get_args(tp))
    return False


def _unannotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception:
        # The codec reports unresolvable annotations when the class is checked or published.
        return {}


def sensitive_field_names(cls: type) -> frozenset[str]:
    """The names of the fields of dataclass ``cls`` that are marked sensitive."""
    found = _fields_of_class.get(cls)
    if found is None:
        hints = _hints(cls)
        found = frozenset(
            item.name
            for item in dataclasses.fields(cls)
            if item.metadata.get(METADATA_KEY) or _marked(hints.get(item.name))
        )
        _fields_of_class[cls] = found
    return found


def sensitive_field_types(cls: type) -> Iterator[tuple[Path, Any]]:
    """Each sensitive path of dataclass ``cls``, nested ones too, with its declared type."""
    yield from _walk_class(cls, (), frozenset())


def _walk_class(cls: type, prefix: Path, seen: frozenset[type]) -> Iterator[tuple[Path, Any]]:
    hints = _hints(cls)
    marked = sensitive_field_names(cls)
    for item in dataclasses.fields(cls):
        tp = hints.get(item.name, Any)
        if item.name in marked:
            yield (*prefix, item.name), _unannotated(tp)
        else:
            yield from _walk_type(tp, (*prefix, item.name), seen | {cls})


def _walk_type(tp: Any, prefix: Path, seen: frozenset[type]) -> Iterator[tuple[Path, Any]]:
    tp = _unannotated(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        found: dict[Path, Any] = {}
        for arg in typing.get_args(tp):
            for path, leaf in _walk_type(arg, prefix, seen):
                found.setdefault(path, leaf)
        yield from found.items()
    elif origin is list or (origin is tuple and typing.get_args(tp)[1:] == (Ellipsis,)):
        yield from _walk_type(typing.get_args(tp)[0], (*prefix, ITEMS), seen)
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in seen:
        yield from _walk_class(tp, prefix, seen)


def _of_event_class(cls: type[DomainEvent]) -> Sensitivity:
    found = _of_class.get(cls)
    if found is None:
        fields = tuple(path for path, _type in sensitive_field_types(cls))
        subject = cls.data_subject
        path = tuple(subject.split(".")) if isinstance(subject, str) and subject else None
        found = _of_class[cls] = Sensitivity(fields=fields, data_subject=path)
    return found


def sensitivity_of(event_type: str) -> Sensitivity:
    """What ``event_type`` declares sensitive: its class's marks for a typed event, its
    ``declare_sensitive()`` for a plain named one, else nothing."""
    cls = event_class_for(event_type)
    if cls is not None:
        return _of_event_class(cls)
    return _declared.get(event_type, NOTHING)


# Redacting -------------------------------------------------------------------------------------


def replace_at(value: Any, path: Path, marker: str, replaced: list[Any] | None = None) -> Any:
    """``value`` with what ``path`` reaches replaced by ``marker``: a copy of the containers
    on the way, the rest shared. Missing keys, None and "" (nothing to hide) are left; each
    value replaced (not already ``marker``) is appended to ``replaced``."""
    if not path:
        if value is None or value == "" or value == marker:
            return value
        if replaced is not None:
            replaced.append(value)
        return marker
    step, rest = path[0], path[1:]
    if step == ITEMS:
        if type(value) is not list:
            return value
        return [replace_at(item, rest, marker, replaced) for item in value]
    if type(value) is not dict or step not in value:
        return value
    copied = dict(value)
    copied[step] = replace_at(value[step], rest, marker, replaced)
    return copied


def redact(event_type: str, payload: Any) -> Any:
    """A copy of ``payload`` (an event's JSON) with its sensitive values shown as
    ``REDACTED``; ``payload`` itself when ``event_type`` has none or it is not an object."""
    paths = sensitivity_of(event_type).fields
    if not paths or type(payload) is not dict:
        return payload
    for path in paths:
        payload = replace_at(payload, path, REDACTED)
    return payload


def redacted_repr(event: Any) -> str:
    """``repr()`` of a dataclass event, with its sensitive fields (nested ones too) shown as
    ``[redacted]``: what tracebacks and logs that format the event show."""
    if not dataclasses.is_dataclass(event) and not isinstance(event, NamedEvent):
        return object.__repr__(event)  # repr() would come back here
    return _repr(event, set())


def _repr(value: Any, active: set[int]) -> str:
    kind = type(value)
    if isinstance(value, NamedEvent):
        return (
            f"NamedEvent(event_type={value.event_type!r}, "
            f"payload={redact(value.event_type, value.payload)!r}, version={value.version!r}, "
            f"ordering_key={value.ordering_key!r})"
        )
    if kind is list or kind is tuple:
        items = ", ".join(_repr(item, active) for item in value)
        return f"[{items}]" if kind is list else f"({items}{',' if len(value) == 1 else ''})"
    if kind is dict:
        return "{" + ", ".join(f"{k!r}: {_repr(v, active)}" for k, v in value.items()) + "}"
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return repr(value)
    if id(value) in active:
        return "..."
    active.add(id(value))
    try:
        marked = sensitive_field_names(kind)
        shown = ", ".join(
            f"{item.name}={_field_repr(value, item.name, marked, active)}"
            for item in dataclasses.fields(value)
            if item.repr
        )
    finally:
        active.discard(id(value))
    return f"{kind.__qualname__}({shown})"


def _field_repr(value: Any, name: str, marked: frozenset[str], active: set[int]) -> str:
    return REDACTED if name in marked else _repr(getattr(value, name), active)


# Error texts -----------------------------------------------------------------------------------


def sensitive_values(event: DomainEvent | NamedEvent | None) -> list[str]:
    """The sensitive values of ``event`` as text might show them, longest first, the short
    ones left out (see ``scrub``)."""
    if event is None:
        return []
    paths = sensitivity_of(event.event_type).fields
    if not paths:
        return []
    payload = event.payload if isinstance(event, NamedEvent) else msgspec.to_builtins(event)
    found: list[Any] = []
    for path in paths:
        replace_at(payload, path, REDACTED, found)
    return texts_of(found)


def texts_of(values: Iterable[Any]) -> list[str]:
    """The scalar leaves of ``values`` as strings, long enough to search for, longest first."""
    texts: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if type(value) is dict:
            stack.extend(value.values())
        elif type(value) is list or type(value) is tuple:
            stack.extend(value)
        elif value is not None and type(value) is not bool:
            text = str(value)
            if len(text) >= MIN_SCRUBBED_LENGTH:
                texts.add(text)
    return sorted(texts, key=lambda text: (-len(text), text))


def scrub(text: str, values: Iterable[str], marker: str = REDACTED) -> str:
    """``text`` with each of ``values`` (longest first, as ``sensitive_values`` gives them)
    replaced by ``marker``, and their ``repr()`` forms too."""
    for value in values:
        if value in text:
            text = text.replace(value, marker)
        quoted = repr(value)[1:-1]
        if quoted != value and quoted in text:
            text = text.replace(quoted, marker)
    return text


# Payload errors --------------------------------------------------------------------------------

_STEP = re.compile(r"\.(\w+)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]")


def _checker_steps(where: str) -> list[str | int] | None:
    steps: list[str | int] = []
    position = 0
    for match in _STEP.finditer(where):
        if match.start() != position:
            return None
        position = match.end()
        name, index, key = match.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(int(index))
        else:
            steps.append(ast.literal_eval(key))
    return steps if position == len(where) else None


def touches_sensitive(event_type: str, where: str) -> bool:
    """Whether the value at ``where`` (a payload check's path: ``.customer.email``,
    ``['email']``, ``.guests[0]``) is, or holds, or lies inside a sensitive field."""
    paths = sensitivity_of(event_type).fields
    if not paths:
        return False
    steps = _checker_steps(where)
    if steps is None:
        return True
    for path in paths:
        if all(
            (isinstance(got, int) if want == ITEMS else got == want)
            for want, got in zip(path, steps, strict=False)
        ):
            return True
    return False

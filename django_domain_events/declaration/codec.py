"""The payload codec: validate an event against its declared field types, encode it to JSON,
and decode stored JSON back to the exact same event.

msgspec does the encoding and decoding (fast, typed, exact for every supported type). Before
encoding, the checker of ``payload_types.py`` walks the values against the declared types.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from json import JSONEncoder
from typing import Any

import msgspec

from django_domain_events.declaration.events import DomainEvent, NamedEvent, event_class_for
from django_domain_events.declaration.payload_types import (
    MARIADB_PAYLOAD_DEPTH,
    MAX_PAYLOAD_DEPTH,
    Checker,
    Mismatch,
    check_json,
    compile_dataclass,
    dataclass_checkers,
    describe,
    too_deep,
)
from django_domain_events.declaration.sensitivity import REDACTED, touches_sensitive
from django_domain_events.exceptions import EventDecodeError, EventDefinitionError, PayloadError


class _EventCodec:
    """What the codec knows about one event class: its checker and its msgspec decoder."""

    __slots__ = ("check", "event_class")

    def __init__(self, event_class: type[DomainEvent]) -> None:
        if not dataclasses.is_dataclass(typing.cast(object, event_class)):
            raise EventDefinitionError(
                f"{event_class.__qualname__} must be a dataclass: decorate it with "
                f"@dataclass(frozen=True)."
            )
        self.event_class = event_class
        self.check: Checker = compile_dataclass(event_class)
        try:
            msgspec.json.Decoder(event_class)
        except TypeError as exc:
            raise EventDefinitionError(f"{event_class.__qualname__}: {exc}") from exc


_codecs: dict[type[DomainEvent], _EventCodec] = {}


def codec_for(event_class: type[DomainEvent]) -> _EventCodec:
    """The cached codec of ``event_class``; raises ``EventDefinitionError`` if it cannot exist."""
    codec = _codecs.get(event_class)
    if codec is None:
        codec = _codecs[event_class] = _EventCodec(event_class)
    return codec


def forget_event_class(event_class: type[DomainEvent]) -> None:
    """Drop the cached codec of ``event_class`` (the caches otherwise keep it alive)."""
    _codecs.pop(event_class, None)
    dataclass_checkers.pop(event_class, None)


def check_event_class(event_class: type[DomainEvent]) -> None:
    """Raise ``EventDefinitionError`` when ``event_class`` cannot be stored exactly."""
    codec_for(event_class)


def _shown(event_type: str, payload: Any) -> str:
    if touches_sensitive(event_type, ""):
        return f"{type(payload).__name__} {REDACTED}"
    return describe(payload)


def _payload_error(label: str, mismatch: Mismatch, event_type: str) -> PayloadError:
    if touches_sensitive(event_type, mismatch.path):
        # The value (and a hint quoting it) would carry personal data into logs and tracebacks.
        got = f"{type(mismatch.value).__name__} {REDACTED}"
        return PayloadError(f"{label}{mismatch.path}: {mismatch.expected} expected, got {got}.")
    return PayloadError(
        f"{label}{mismatch.path}: {mismatch.expected} expected, got "
        f"{describe(mismatch.value)}{mismatch.hint}."
    )


def _check_depth(label: str, value: Any) -> None:
    path = too_deep(value)
    if path is not None:
        raise PayloadError(
            f"{label}{path}: nested more than {MAX_PAYLOAD_DEPTH} levels deep, the limit "
            f"(MAX_PAYLOAD_DEPTH, the payload itself counting as one). Flatten the structure."
        )


def check_mariadb_depth(label: str, data: bytes) -> None:
    """Refuse an encoded payload nested deeper than MariaDB's JSON columns store
    (``MARIADB_PAYLOAD_DEPTH``), before the database refuses the whole transaction."""
    path = too_deep(msgspec.json.decode(data), MARIADB_PAYLOAD_DEPTH)
    if path is not None:
        raise PayloadError(
            f"{label} payload{path}: nested more than {MARIADB_PAYLOAD_DEPTH} levels deep, the "
            f"most MariaDB's JSON columns store (MARIADB_PAYLOAD_DEPTH, the payload itself "
            f"counting as one). Flatten the structure."
        )


def _check_size(label: str, data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise PayloadError(
            f"{label}: payload is {len(data):,} bytes encoded, above the limit of {max_bytes:,} "
            f"(DOMAIN_EVENTS['MAX_PAYLOAD_BYTES']). Store large data elsewhere and publish its id."
        )


def encode_event(event: DomainEvent, max_bytes: int) -> bytes:
    """Validate ``event`` against its declared types and return its JSON encoding."""
    cls = type(event)
    codec = codec_for(cls)
    _check_depth(cls.__qualname__, event)
    try:
        codec.check(event, "")
    except Mismatch as mismatch:
        raise _payload_error(cls.__qualname__, mismatch, cls.event_type) from None
    data = msgspec.json.encode(event)
    _check_size(cls.__qualname__, data, max_bytes)
    return data


def encode_payload(event_type: str, payload: Mapping[str, Any], max_bytes: int) -> bytes:
    """Validate a named event's payload (plain JSON values only) and return its encoding."""
    if type(payload) is not dict:
        if not isinstance(payload, Mapping):
            raise PayloadError(
                f"{event_type}: the payload must be a dict, got {_shown(event_type, payload)}."
            )
        payload = dict(payload)
    _check_depth(f"{event_type} payload", payload)
    try:
        check_json(payload, "")
    except Mismatch as mismatch:
        raise _payload_error(f"{event_type} payload", mismatch, event_type) from None
    data = msgspec.json.encode(payload)
    _check_size(event_type, data, max_bytes)
    return data


def decode_event(event_type: str, version: int, payload: Any) -> DomainEvent | NamedEvent:
    """Turn a stored payload back into its event: the current class (upcast from older
    versions) for typed events, a ``NamedEvent`` for named ones. Raises ``EventDecodeError``
    for a payload no publish could have written: not a JSON object, or unreadable (as the
    outbox's columns give one nested deeper than ``MAX_PAYLOAD_DEPTH``)."""
    _check_stored(event_type, version, payload)
    event_class = event_class_for(event_type)
    if event_class is None:
        return NamedEvent(event_type=event_type, payload=payload, version=version)
    if version > event_class.version:
        raise EventDecodeError(
            f"{event_type}: stored payload is version {version}, newer than "
            f"{event_class.__qualname__}.version = {event_class.version}. Deploy the code that "
            f"wrote it before processing it."
        )
    if version < event_class.version:
        payload = event_class.upcast(dict(payload), version)
    try:
        return msgspec.convert(payload, event_class)
    except msgspec.ValidationError as exc:
        raise EventDecodeError(
            f"{event_type} (version {version}): stored payload does not fit "
            f"{event_class.__qualname__}: {exc}. If the class changed shape, bump its version "
            f"and define upcast()."
        ) from exc


def _check_stored(event_type: str, version: int, payload: Any) -> None:
    # The outbox's JSON columns give a value nested past MAX_PAYLOAD_DEPTH as UnreadableJSON.
    if isinstance(payload, UnreadableJSON):
        problem = f"cannot be read as JSON ({payload.reason})"
    elif type(payload) is not dict:
        problem = f"is {describe(payload)}, not a JSON object"
    else:
        return
    raise EventDecodeError(
        f"{event_type} (version {version}): the stored payload {problem}; publish() never "
        f"writes such a payload, so the row was changed after it. Nothing can deliver it."
    )


class UnreadableJSON(str):
    """The text of a stored JSON value the decoder could not read, with the reason: what the
    outbox's JSON columns give instead of raising, so a row holding anything can still be
    loaded, shown and deleted."""

    reason: str

    def __new__(cls, text: str, reason: str) -> UnreadableJSON:
        made = super().__new__(cls, text)
        made.reason = reason
        return made


def decode_json(data: bytes) -> Any:
    """Decode JSON bytes to plain Python values."""
    return msgspec.json.decode(data)


class PayloadJSONEncoder(JSONEncoder):
    """JSON encoder for the payload column: msgspec for speed, and pre-encoded ``msgspec.Raw``
    payloads written as they are instead of being decoded and encoded again."""

    def encode(self, o: Any) -> str:
        return msgspec.json.encode(o).decode()

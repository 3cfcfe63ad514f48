"""CloudEvents 1.0 messages: the ``Message`` value, and its two wire forms.

Structured mode carries the whole event as one JSON document (``application/cloudevents+json``)
with ``data`` embedded as the very JSON bytes the outbox stored. Binary mode carries the
attributes as ``ce_`` headers (the prefix of the CloudEvents Kafka binding, which AMQP 0-9-1
brokers such as RabbitMQ have no binding of their own to replace) and ``data`` as the body.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import msgspec

from django_domain_events.exceptions import MessageFormatError

SPECVERSION = "1.0"
"""The CloudEvents version this module writes and reads."""

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
"""The content type of a structured-mode message."""

BINARY_PREFIX = "ce_"
"""The prefix of the headers that carry the attributes in binary mode."""

# Accepted on read besides ours: the HTTP binding's, and the AMQP 1.0 binding's two.
_READ_PREFIXES = ("ce_", "ce-", "cloudevents:", "cloudevents_")

Mode = Literal["structured", "binary"]
"""How a message is put on the wire: one JSON document, or attributes as headers."""

REQUIRED = ("id", "source", "specversion", "type")
"""The attributes every CloudEvents event has."""

# Attributes the specification defines: no extension may take their names.
_CONTEXT_ATTRIBUTES = frozenset(
    (*REQUIRED, "time", "datacontenttype", "dataschema", "subject", "data", "data_base64")
)
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")


def extension_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a CloudEvents extension attribute, or None if it can."""
    if not isinstance(name, str) or not _EXTENSION_NAME.fullmatch(name):
        return (
            f"{name!r} is not a CloudEvents extension name: use 1 to 20 characters from a-z "
            f"and 0-9 only"
        )
    if name in _CONTEXT_ATTRIBUTES:
        return f"{name!r} is a CloudEvents context attribute, not free for an extension"
    return None


@dataclass(frozen=True)
class Message:
    """One CloudEvents 1.0 event.

    ``data`` holds the payload's JSON bytes exactly as the outbox stored them; ``time`` is an
    aware datetime, kept in UTC. ``extensions`` carries ``dataversion``, ``correlationid``,
    ``causationid``, ``traceparent`` and ``orderingkey`` for events this app sends.
    """

    id: str
    source: str
    type: str
    time: dt.datetime
    data: bytes
    specversion: str = SPECVERSION
    datacontenttype: str = "application/json"
    extensions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("id", "source", "type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise MessageFormatError(
                    f"Message.{name} must be a non-empty string, got {value!r:.80}."
                )
        if self.specversion != SPECVERSION:
            raise MessageFormatError(
                f"Message.specversion {self.specversion!r:.40}: only CloudEvents "
                f"{SPECVERSION!r} is supported."
            )
        if not isinstance(self.time, dt.datetime) or self.time.utcoffset() is None:
            raise MessageFormatError(
                f"Message.time must be an aware datetime, got {self.time!r:.80}; give it a "
                f"time zone (datetime.timezone.utc)."
            )
        if not isinstance(self.data, bytes):
            raise MessageFormatError(
                f"Message.data must be bytes, got {type(self.data).__qualname__}."
            )
        if not isinstance(self.datacontenttype, str) or not self.datacontenttype:
            raise MessageFormatError("Message.datacontenttype must be a non-empty string.")
        for name, value in self.extensions.items():
            problem = extension_name_problem(name)
            if problem is not None:
                raise MessageFormatError(f"Message.extensions: {problem}.")
            if not isinstance(value, str):
                raise MessageFormatError(
                    f"Message.extensions[{name!r}] must be a string, got "
                    f"{type(value).__qualname__}."
                )
        object.__setattr__(self, "time", self.time.astimezone(dt.UTC))
        object.__setattr__(self, "extensions", dict(self.extensions))


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def format_time(value: dt.datetime) -> str:
    """``value`` as an RFC 3339 timestamp in UTC (``2026-01-31T12:00:00.123456Z``)."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise MessageFormatError(
            f"The 'time' attribute {value!r:.60} is not an RFC 3339 timestamp with a time zone."
        )
    return parsed


def to_structured(message: Message) -> tuple[dict[str, str], bytes]:
    """The message as one JSON document: ``({"content-type": STRUCTURED_CONTENT_TYPE}, body)``.

    JSON ``data`` is embedded as it is, byte for byte; other content goes in ``data_base64``.
    """
    document: dict[str, Any] = {
        "specversion": message.specversion,
        "id": message.id,
        "source": message.source,
        "type": message.type,
        "time": format_time(message.time),
        "datacontenttype": message.datacontenttype,
        **message.extensions,
    }
    if _is_json(message.datacontenttype):
        try:
            msgspec.json.decode(message.data)
        except msgspec.DecodeError as exc:
            raise MessageFormatError(
                f"Message {message.id}: data is not JSON ({exc}) although its datacontenttype "
                f"is {message.datacontenttype!r}."
            ) from None
        document["data"] = msgspec.Raw(message.data)
    else:
        document["data_base64"] = base64.b64encode(message.data).decode()
    return {"content-type": STRUCTURED_CONTENT_TYPE}, msgspec.json.encode(document)


def to_binary(message: Message) -> tuple[dict[str, str], bytes]:
    """The message with its attributes as ``ce_`` headers and ``data`` as the body; the
    ``content-type`` header is the ``datacontenttype``."""
    headers = {
        "content-type": message.datacontenttype,
        "ce_specversion": message.specversion,
        "ce_id": message.id,
        "ce_source": message.source,
        "ce_type": message.type,
        "ce_time": format_time(message.time),
    }
    for name, value in message.extensions.items():
        headers[BINARY_PREFIX + name] = value
    return headers, message.data


def encode(message: Message, mode: Mode) -> tuple[dict[str, str], bytes]:
    """``to_structured`` or ``to_binary``, as ``mode`` says."""
    if mode == "binary":
        return to_binary(message)
    return to_structured(message)


def _text(value: Any, where: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise MessageFormatError(f"{where} is not UTF-8 text.") from None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MessageFormatError(f"{where} must be a string, got {type(value).__qualname__}.")
    return str(value)


def _content_type(headers: Mapping[Any, Any]) -> str:
    for key, value in headers.items():
        if isinstance(key, str) and key.lower().replace("_", "-") == "content-type":
            return _text(value, "The content-type header")
    return ""


def _message(attributes: dict[str, str], data: bytes, mode: str) -> Message:
    missing = [name for name in REQUIRED if not attributes.get(name)]
    if missing:
        raise MessageFormatError(
            f"A {mode}-mode message lacks the required CloudEvents attribute(s) "
            f"{', '.join(missing)}."
        )
    if attributes["specversion"] != SPECVERSION:
        raise MessageFormatError(
            f"The message is CloudEvents {attributes['specversion']!r:.20}; only "
            f"{SPECVERSION!r} is supported."
        )
    if "time" not in attributes:
        raise MessageFormatError(
            f"Message {attributes['id']!r:.60} has no 'time' attribute; this app needs it."
        )
    extensions = {
        name: value
        for name, value in attributes.items()
        if name not in _CONTEXT_ATTRIBUTES and extension_name_problem(name) is None
    }
    return Message(
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        time=_parse_time(attributes["time"]),
        data=data,
        specversion=SPECVERSION,
        datacontenttype=attributes.get("datacontenttype") or "application/json",
        extensions=extensions,
    )


def _from_structured(body: bytes) -> Message:
    try:
        document = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except msgspec.DecodeError as exc:
        raise MessageFormatError(
            f"A structured-mode message's body is not a JSON object: {exc}."
        ) from None
    attributes: dict[str, str] = {}
    data = b""
    for name, raw in document.items():
        if name == "data":
            data = bytes(raw)
            continue
        value = msgspec.json.decode(raw)
        if name == "data_base64":
            try:
                data = base64.b64decode(_text(value, "'data_base64'"), validate=True)
            except binascii.Error:
                raise MessageFormatError("The 'data_base64' attribute is not base64.") from None
            continue
        if value is None:
            continue
        attributes[name] = _text(value, f"The {name!r} attribute")
    return _message(attributes, data, "structured")


def _from_binary(headers: Mapping[Any, Any], body: bytes, content_type: str) -> Message:
    attributes: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str):
            continue
        lowered = key.lower()
        prefix = next((p for p in _READ_PREFIXES if lowered.startswith(p)), None)
        if prefix is None:
            continue
        name = lowered[len(prefix) :]
        attributes[name] = _text(value, f"The {key!r} header")
    if content_type:
        attributes["datacontenttype"] = content_type
    return _message(attributes, bytes(body), "binary")


def from_wire(headers: Mapping[Any, Any], body: bytes) -> Message:
    """The message that ``headers`` and ``body`` carry, in either mode.

    Structured mode is recognised by its ``application/cloudevents+json`` content type, binary
    mode by a ``ce_specversion`` header (``ce-``, ``cloudEvents:`` and ``cloudEvents_`` are read
    too). Raises ``MessageFormatError`` saying what is wrong with anything else.
    """
    if not isinstance(cast(object, body), bytes | bytearray | memoryview):
        raise MessageFormatError(f"A message body must be bytes, got {type(body).__qualname__}.")
    content_type = _content_type(headers)
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("application/cloudevents"):
        if media != STRUCTURED_CONTENT_TYPE:
            raise MessageFormatError(
                f"Content type {media!r}: only single events in {STRUCTURED_CONTENT_TYPE} are "
                f"read, not batches or other formats."
            )
        return _from_structured(bytes(body))
    if any(
        isinstance(key, str) and key.lower() in {p + "specversion" for p in _READ_PREFIXES}
        for key in headers
    ):
        return _from_binary(headers, bytes(body), content_type)
    raise MessageFormatError(
        f"Not a CloudEvents message: the content type is {content_type or 'missing'!r:.60}, not "
        f"{STRUCTURED_CONTENT_TYPE!r}, and there is no ce_specversion header."
    )


__all__ = [
    "BINARY_PREFIX",
    "REQUIRED",
    "SPECVERSION",
    "STRUCTURED_CONTENT_TYPE",
    "Message",
    "Mode",
    "encode",
    "extension_name_problem",
    "format_time",
    "from_wire",
    "to_binary",
    "to_structured",
]

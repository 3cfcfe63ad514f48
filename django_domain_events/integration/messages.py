"""The message an integration event travels as: one CloudEvents 1.0 event."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django_domain_events.exceptions import MessageFormatError

_ATTRIBUTES = ("id", "source", "type", "time", "specversion")


@dataclass(frozen=True)
class Message:
    """One CloudEvents 1.0 event."""

    id: str
    source: str
    type: str
    time: dt.datetime
    data: bytes
    specversion: str = "1.0"
    datacontenttype: str = "application/json"
    extensions: Mapping[str, str] = field(default_factory=dict)


def to_structured(message: Message) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``message`` in CloudEvents' structured mode."""
    document: dict[str, Any] = {
        "specversion": message.specversion,
        "id": message.id,
        "source": message.source,
        "type": message.type,
        "time": message.time.isoformat(),
        "datacontenttype": message.datacontenttype,
        "data": json.loads(message.data),
        **message.extensions,
    }
    headers = {"content-type": "application/cloudevents+json"}
    return headers, json.dumps(document).encode()


def to_binary(message: Message) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``message`` in CloudEvents' binary mode."""
    headers = {
        "ce-specversion": message.specversion,
        "ce-id": message.id,
        "ce-source": message.source,
        "ce-type": message.type,
        "ce-time": message.time.isoformat(),
        "content-type": message.datacontenttype,
    }
    headers.update({f"ce-{name}": value for name, value in message.extensions.items()})
    return headers, message.data


def from_wire(headers: Mapping[str, Any], body: bytes) -> Message:
    """The message that ``headers`` and ``body`` carry, in either mode."""
    if "ce-id" in headers:
        attributes = {
            key[3:]: str(value) for key, value in headers.items() if key.startswith("ce-")
        }
        data = body
        content_type = str(headers.get("content-type", "application/json"))
    else:
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise MessageFormatError(
                f"The body is not a CloudEvents JSON document: {exc}."
            ) from exc
        if not isinstance(document, dict):
            raise MessageFormatError("The body is not a CloudEvents JSON object.")
        data = json.dumps(document.pop("data", None)).encode()
        content_type = str(document.pop("datacontenttype", "application/json"))
        attributes = {key: str(value) for key, value in document.items()}
    missing = [name for name in _ATTRIBUTES if not attributes.get(name)]
    if missing:
        raise MessageFormatError(f"The message lacks CloudEvents attributes: {', '.join(missing)}.")
    try:
        time = dt.datetime.fromisoformat(attributes.pop("time"))
    except ValueError as exc:
        raise MessageFormatError(f"The message's time is not ISO 8601: {exc}.") from exc
    return Message(
        id=attributes.pop("id"),
        source=attributes.pop("source"),
        type=attributes.pop("type"),
        time=time,
        data=data,
        specversion=attributes.pop("specversion"),
        datacontenttype=content_type,
        extensions=attributes,
    )

"""An AsyncAPI 3.0.0 document of the integration events: one channel per event type, each with
one message whose payload is the event's JSON Schema."""

from __future__ import annotations

import re
from typing import Any

from django_domain_events.catalogue.building import Catalogue
from django_domain_events.catalogue.json_schema import event_schema

ASYNCAPI_VERSION = "3.0.0"

SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
"""The payloads' schema format: JSON Schema 2020-12, not AsyncAPI's default dialect."""


def component_id(event_type: str) -> str:
    """``event_type`` as an AsyncAPI component key (letters, digits, ``.``, ``_``, ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", event_type)


def asyncapi_document(
    catalogue: Catalogue, *, title: str = "Integration events", version: str = "1.0.0"
) -> dict[str, Any]:
    """The AsyncAPI document of the integration events in ``catalogue``. Each event type is a
    channel whose address is the event type, with a ``send`` operation: this application
    publishes them."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for entry in catalogue.events:
        if entry.kind != "integration" or entry.event_class is None:
            continue
        key = component_id(entry.event_type)
        message: dict[str, Any] = {
            "name": entry.event_type,
            "title": entry.event_class.__qualname__,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{key}"},
            "x-event-version": entry.version,
        }
        if entry.description:
            message["summary"] = entry.description
        messages[key] = message
        schemas[key] = {"schemaFormat": SCHEMA_FORMAT, "schema": event_schema(entry.event_class)}
        channel: dict[str, Any] = {
            "address": entry.event_type,
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
        }
        if entry.description:
            channel["description"] = entry.description
        channels[key] = channel
        operation: dict[str, Any] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{key}"}],
        }
        if entry.publishers:
            operation["description"] = f"Published from {', '.join(entry.publishers)}."
        operations[f"send.{key}"] = operation
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": version},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }

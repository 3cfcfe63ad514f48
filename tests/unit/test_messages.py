"""CloudEvents messages: both wire modes round-trip exactly, and anything else is refused
with an error that says what is wrong."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from django_domain_events.exceptions import DomainEventsError, MessageFormatError
from django_domain_events.integration.messages import (
    STRUCTURED_CONTENT_TYPE,
    Message,
    extension_name_problem,
    from_wire,
    to_binary,
    to_structured,
)

# Spacing, key order, a big Decimal and non-ASCII text: what an exact copy must keep.
DATA = b'{"order_id":7,"total":"12345678901234567890.10","note":"cr\xc3\xa8me","at":null}'


def message(**changes: Any) -> Message:
    values: dict[str, Any] = {
        "id": "0190f1d2-7c1e-7a3b-9c4d-1234567890ab",
        "source": "/shop",
        "type": "shop.PaymentSettled",
        "time": dt.datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=dt.UTC),
        "data": DATA,
        "extensions": {
            "dataversion": "2",
            "correlationid": "c-1",
            "causationid": "0190f1d2-0000-7000-8000-000000000001",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "orderingkey": "order-7",
        },
    }
    values.update(changes)
    return Message(**values)


@pytest.mark.parametrize("write", [to_structured, to_binary])
def test_a_message_comes_back_from_the_wire_exactly(write: Any) -> None:
    sent = message()

    headers, body = write(sent)
    received = from_wire(headers, body)

    assert received == sent
    assert received.data == DATA


def test_structured_mode_is_one_cloudevents_document_with_the_data_embedded_as_json() -> None:
    headers, body = to_structured(message())

    assert headers == {"content-type": STRUCTURED_CONTENT_TYPE}
    document = json.loads(body)
    assert document["specversion"] == "1.0"
    assert document["id"] == "0190f1d2-7c1e-7a3b-9c4d-1234567890ab"
    assert document["type"] == "shop.PaymentSettled"
    assert document["time"] == "2026-01-31T12:00:00.123456Z"
    assert document["datacontenttype"] == "application/json"
    assert document["dataversion"] == "2"
    assert document["traceparent"].startswith("00-4bf9")
    assert document["data"] == json.loads(DATA)
    assert DATA in body  # the very bytes, not re-encoded


def test_binary_mode_puts_the_attributes_in_ce_headers_and_the_data_in_the_body() -> None:
    headers, body = to_binary(message())

    assert body == DATA
    assert headers["content-type"] == "application/json"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == "0190f1d2-7c1e-7a3b-9c4d-1234567890ab"
    assert headers["ce_source"] == "/shop"
    assert headers["ce_type"] == "shop.PaymentSettled"
    assert headers["ce_time"] == "2026-01-31T12:00:00.123456Z"
    assert headers["ce_orderingkey"] == "order-7"


def test_other_bindings_header_prefixes_and_bytes_values_are_read() -> None:
    headers = {
        "content_type": "application/json",
        "cloudEvents:specversion": b"1.0",
        "cloudEvents:id": "1",
        "cloudEvents:source": "/billing",
        "cloudEvents:type": "billing.Paid",
        "cloudEvents:time": "2026-01-31T13:00:00+01:00",
    }

    received = from_wire(headers, b"{}")

    assert received.time == dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)
    assert received.source == "/billing"


def test_non_json_data_travels_as_base64_in_structured_mode() -> None:
    sent = message(datacontenttype="application/octet-stream", data=b"\x00\xff")

    headers, body = to_structured(sent)

    assert "data_base64" in json.loads(body)
    assert from_wire(headers, body) == sent


@pytest.mark.parametrize(
    ("headers", "body", "says"),
    [
        ({"content-type": STRUCTURED_CONTENT_TYPE}, b"not json", "not a JSON object"),
        ({"content-type": STRUCTURED_CONTENT_TYPE}, b"[1, 2]", "not a JSON object"),
        ({"content-type": STRUCTURED_CONTENT_TYPE}, b"\xff\xfe", "not a JSON object"),
        ({"content-type": "application/cloudevents-batch+json"}, b"[]", "not batches"),
        ({"content-type": "application/json"}, b"{}", "no ce_specversion header"),
        ({}, b"{}", "content type is 'missing'"),
    ],
)
def test_garbage_is_refused_saying_what_it_is(
    headers: dict[str, Any], body: bytes, says: str
) -> None:
    with pytest.raises(MessageFormatError, match=says) as raised:
        from_wire(headers, body)

    assert isinstance(raised.value, DomainEventsError)


@pytest.mark.parametrize("missing", ["id", "source", "type", "specversion"])
def test_a_missing_required_attribute_is_named(missing: str) -> None:
    headers, body = to_structured(message())
    document = json.loads(body)
    del document[missing]

    with pytest.raises(MessageFormatError, match=rf"required CloudEvents attribute\(s\) {missing}"):
        from_wire(headers, json.dumps(document).encode())


@pytest.mark.parametrize(
    ("attribute", "value", "says"),
    [
        ("specversion", "0.3", "only '1.0' is supported"),
        ("time", "yesterday", "not an RFC 3339 timestamp"),
        ("time", "2026-01-31T12:00:00", "not an RFC 3339 timestamp with a time zone"),
        ("id", 7.5, "must be a string"),
    ],
)
def test_a_malformed_attribute_is_refused(attribute: str, value: Any, says: str) -> None:
    headers, body = to_structured(message())
    document = json.loads(body)
    document[attribute] = value

    with pytest.raises(MessageFormatError, match=says):
        from_wire(headers, json.dumps(document).encode())


def test_a_binary_message_without_time_is_refused() -> None:
    headers, body = to_binary(message())
    del headers["ce_time"]

    with pytest.raises(MessageFormatError, match="no 'time' attribute"):
        from_wire(headers, body)


@pytest.mark.parametrize(
    "name", ["orderingKey", "ordering_key", "", "a" * 21, "data", "subject", "ünïcode"]
)
def test_extension_names_are_lowercase_letters_and_digits_and_not_context_attributes(
    name: str,
) -> None:
    assert extension_name_problem(name) is not None
    with pytest.raises(MessageFormatError, match="extension"):
        message(extensions={name: "x"})


def test_good_extension_names_are_accepted() -> None:
    assert extension_name_problem("dataversion") is None
    assert extension_name_problem("a1") is None


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"id": ""}, "Message.id must be a non-empty string"),
        ({"time": dt.datetime(2026, 1, 1)}, "aware datetime"),
        ({"data": "text"}, "data must be bytes"),
        ({"specversion": "0.3"}, "only CloudEvents '1.0'"),
        ({"extensions": {"dataversion": 2}}, r"extensions\['dataversion'\] must be a string"),
    ],
)
def test_a_message_is_checked_when_made(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(MessageFormatError, match=says):
        message(**changes)


def test_the_time_is_kept_in_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))

    made = message(time=dt.datetime(2026, 1, 31, 13, tzinfo=paris))

    assert made.time.tzinfo is dt.UTC
    assert made.time == dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)


def test_structured_mode_refuses_data_that_is_not_the_json_it_claims() -> None:
    with pytest.raises(MessageFormatError, match="data is not JSON"):
        to_structured(message(data=b"{broken"))

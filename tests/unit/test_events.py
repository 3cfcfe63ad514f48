"""Event classes: event_type and version, abstract bases, lookup by type, upcasting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps

from django_domain_events import (
    DomainEvent,
    EventDecodeError,
    EventDefinitionError,
    NamedEvent,
)
from django_domain_events.declaration.codec import decode_event
from django_domain_events.declaration.events import event_class_for, event_classes
from tests.testapp.events import OrderPlaced, OrderShipped


@dataclass(frozen=True)
class NotInAnApp(DomainEvent):
    """Defined in a module that belongs to no installed app."""

    note: str


@dataclass(frozen=True)
class Explicit(DomainEvent):
    event_type = "unit_events.explicit"
    version = 3

    note: str


@dataclass(frozen=True)
class AuditedBase(DomainEvent, abstract=True):
    """A base class for shared fields; never published itself."""

    actor: str


@dataclass(frozen=True)
class AuditedThing(AuditedBase):
    event_type = "unit_events.audited_thing"

    thing_id: int


@pytest.fixture(autouse=True)
def _disposable(disposable_classes: None) -> None:
    """Every test here defines throwaway event classes."""


def test_default_event_type_is_app_label_and_class_name() -> None:
    assert OrderPlaced.event_type == "testapp.OrderPlaced"
    assert OrderShipped.event_type == "testapp.OrderShipped"


def test_default_event_type_outside_an_installed_app_is_module_and_qualname() -> None:
    assert NotInAnApp.event_type == "tests.unit.test_events.NotInAnApp"


def test_event_type_is_overridden_by_a_class_attribute() -> None:
    assert Explicit.event_type == "unit_events.explicit"


def test_subclass_of_a_class_with_explicit_event_type_gets_its_own_default() -> None:
    @dataclass(frozen=True)
    class ExplicitChild(Explicit):
        pass

    assert ExplicitChild.event_type == (
        "tests.unit.test_events."
        "test_subclass_of_a_class_with_explicit_event_type_gets_its_own_default."
        "<locals>.ExplicitChild"
    )


def test_version_defaults_to_one() -> None:
    assert OrderPlaced.version == 1
    assert NotInAnApp.version == 1


def test_version_is_overridden_by_a_class_attribute() -> None:
    assert Explicit.version == 3
    assert OrderShipped.version == 2


@pytest.mark.parametrize("version", [0, -1, "2", 1.5, True, None])
def test_invalid_version_is_a_definition_error(version: object) -> None:
    namespace = {"event_type": "unit_events.bad_version", "version": version}
    with pytest.raises(EventDefinitionError, match=r"BadVersion\.version must be an integer >= 1"):
        type("BadVersion", (DomainEvent,), namespace)


@pytest.mark.parametrize("event_type", ["", 7, None, b"unit_events.bytes"])
def test_invalid_event_type_is_a_definition_error(event_type: object) -> None:
    with pytest.raises(EventDefinitionError, match=r"BadType\.event_type must be a non-empty str"):
        type("BadType", (DomainEvent,), {"event_type": event_type})


def test_default_event_type_before_the_app_registry_is_ready_is_a_definition_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(apps, "apps_ready", False)

    with pytest.raises(EventDefinitionError, match="before Django's app registry was ready"):
        type("TooEarly", (DomainEvent,), {})


def test_explicit_event_type_needs_no_app_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apps, "apps_ready", False)

    early = type("Early", (DomainEvent,), {"event_type": "unit_events.early"})

    assert early.event_type == "unit_events.early"


def test_abstract_bases_are_not_event_classes() -> None:
    classes = set(event_classes())

    assert AuditedThing in classes
    assert AuditedBase not in classes
    assert DomainEvent not in classes


def test_concrete_event_classes_include_the_test_app_events() -> None:
    classes = set(event_classes())

    assert {OrderPlaced, OrderShipped, NotInAnApp, Explicit} <= classes


def test_subclass_of_an_abstract_base_keeps_the_base_fields() -> None:
    thing = AuditedThing(actor="ada", thing_id=1)

    assert decode_event("unit_events.audited_thing", 1, {"actor": "ada", "thing_id": 1}) == thing


def test_event_class_for_finds_the_class_declaring_the_type() -> None:
    assert event_class_for("testapp.OrderPlaced") is OrderPlaced
    assert event_class_for("unit_events.explicit") is Explicit


def test_event_class_for_an_unknown_type_is_none() -> None:
    assert event_class_for("unit_events.nobody_declares_this") is None


def test_event_class_for_an_abstract_base_type_is_none() -> None:
    assert event_class_for(AuditedBase.event_type) is None


def test_event_class_for_sees_classes_defined_after_an_earlier_lookup() -> None:
    assert event_class_for("unit_events.defined_later") is None

    @dataclass(frozen=True)
    class DefinedLater(DomainEvent):
        event_type = "unit_events.defined_later"

    assert event_class_for("unit_events.defined_later") is DefinedLater


def test_decode_event_upcasts_a_version_1_payload() -> None:
    event = decode_event("testapp.OrderShipped", 1, {"order_id": 5})

    assert event == OrderShipped(order_id=5, carrier="unknown")
    assert type(event) is OrderShipped


def test_decode_event_at_the_current_version_does_not_upcast() -> None:
    event = decode_event("testapp.OrderShipped", 2, {"order_id": 5, "carrier": "dhl"})

    assert event == OrderShipped(order_id=5, carrier="dhl")


def test_upcast_gets_a_copy_of_the_stored_payload() -> None:
    @dataclass(frozen=True)
    class Renamed(DomainEvent):
        event_type = "unit_events.renamed"
        version = 2

        name: str

        @classmethod
        def upcast(cls, payload: dict[str, Any], from_version: int) -> dict[str, Any]:
            payload["name"] = payload.pop("title")
            return payload

    stored = {"title": "kept"}

    assert decode_event("unit_events.renamed", 1, stored) == Renamed(name="kept")
    assert stored == {"title": "kept"}


def test_default_upcast_refuses_with_a_helpful_message() -> None:
    @dataclass(frozen=True)
    class NoUpcast(DomainEvent):
        event_type = "unit_events.no_upcast"
        version = 2

        order_id: int

    with pytest.raises(EventDecodeError) as excinfo:
        decode_event("unit_events.no_upcast", 1, {"order_id": 1})

    message = str(excinfo.value)
    assert "NoUpcast is version 2 but a stored payload is version 1" in message
    assert "defines no upcast()" in message
    assert "upcast(payload, from_version)" in message


def test_upcast_of_the_test_app_refuses_versions_it_does_not_know() -> None:
    with pytest.raises(EventDecodeError, match="stored payload is version 0"):
        OrderShipped.upcast({"order_id": 1}, 0)


def test_stored_version_newer_than_the_class_is_a_decode_error() -> None:
    with pytest.raises(EventDecodeError) as excinfo:
        decode_event("testapp.OrderPlaced", 2, {"order_id": 1, "total": "1.00"})

    message = str(excinfo.value)
    assert "testapp.OrderPlaced: stored payload is version 2" in message
    assert "newer than OrderPlaced.version = 1" in message


def test_stored_payload_that_does_not_fit_the_class_is_a_decode_error() -> None:
    with pytest.raises(EventDecodeError, match=r"does not fit OrderPlaced.*bump its version"):
        decode_event("testapp.OrderPlaced", 1, {"order_id": 1})


def test_unknown_event_type_decodes_to_a_named_event() -> None:
    event = decode_event("billing.invoice_paid", 4, {"invoice_id": 7})

    assert event == NamedEvent(
        event_type="billing.invoice_paid", payload={"invoice_id": 7}, version=4
    )


def test_named_event_defaults() -> None:
    event = NamedEvent("billing.invoice_paid")

    assert event.payload == {}
    assert event.version == 1

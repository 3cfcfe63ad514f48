"""Sensitive fields: marked on dataclass events or declared for named ones, they reach their
receivers as published, and every other surface shows them redacted: reprs, payload errors,
recorded failures and their logs, the admin's event and delivery pages."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import CheckMessage
from django.test import Client, override_settings
from django.urls import reverse

from django_domain_events import (
    DomainEvent,
    NamedEvent,
    PayloadError,
    Sensitive,
    declare_sensitive,
    publish,
    receiver,
    use_dispatcher,
)
from django_domain_events.checks import check_sensitive_fields
from django_domain_events.declaration.registry import Registry
from django_domain_events.declaration.sensitivity import REDACTED, redact, sensitivity_of
from django_domain_events.models import Delivery, DeliveryAttempt, DeliveryState, OutboxEvent
from django_domain_events.testing import drain
from tests.sensitive_events import (
    EMAIL,
    NEWSLETTER,
    STREET,
    Address,
    CustomerRegistered,
    newsletter_declared,
)

pytestmark = pytest.mark.django_db(transaction=True)

NO_BACKOFF = {"RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0}


def registered() -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=7,
        email=EMAIL,
        phone="+33 6 12 34 56 78",
        address=Address(street=STREET, city="Lyon"),
        guests=[Address(street="3 Guest Lane", city="Nice")],
    )


@pytest.fixture
def newsletter() -> Any:
    with newsletter_declared():
        yield


# Declaring ---------------------------------------------------------------------------------


def test_marks_annotated_metadata_nested_and_list_fields() -> None:
    declared = sensitivity_of(CustomerRegistered.event_type)

    assert declared.fields == (
        ("email",),
        ("phone",),
        ("address", "street"),
        ("guests", "[]", "street"),
    )
    assert declared.data_subject == ("customer_id",)


def test_a_named_event_declared_sensitive(newsletter: None) -> None:
    declared = sensitivity_of(NEWSLETTER)

    assert declared.fields == (("email",),)
    assert declared.data_subject == ("user_id",)
    assert sensitivity_of("sensitive_tests.undeclared").fields == ()


@pytest.mark.parametrize(
    ("fields", "subject", "message"),
    [
        ("email", None, "is one string; give a tuple of paths: fields=('email',)"),
        ((), None, "give at least one field path"),
        (("customer..email",), None, "is not a field path"),
        (("email",), "guests[].id", "goes through a list"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_fix(
    newsletter: None, fields: Any, subject: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        declare_sensitive(NEWSLETTER, fields, data_subject=subject)


# What receivers get, what reprs show ---------------------------------------------------------


def test_receivers_get_the_real_values(receiver_registry: Registry, newsletter: None) -> None:
    got: list[Any] = []
    receiver(CustomerRegistered, name="unit_sensitive.typed")(got.append)
    receiver(NEWSLETTER, name="unit_sensitive.named")(got.append)

    publish(registered())
    publish(NEWSLETTER, {"user_id": 7, "email": EMAIL})

    assert got[0].email == EMAIL
    assert got[0].address.street == STREET
    assert got[1].payload["email"] == EMAIL
    assert OutboxEvent.objects.filter(payload__email=EMAIL).count() == 2


def test_the_repr_of_an_event_redacts_its_sensitive_fields(newsletter: None) -> None:
    shown = repr(registered())

    assert EMAIL not in shown
    assert STREET not in shown
    assert "3 Guest Lane" not in shown
    assert shown == (
        "CustomerRegistered(customer_id=7, email=[redacted], phone=[redacted], "
        "address=Address(street=[redacted], city='Lyon'), "
        "guests=[Address(street=[redacted], city='Nice')])"
    )
    named = repr(NamedEvent(NEWSLETTER, {"user_id": 7, "email": EMAIL}))
    assert EMAIL not in named
    assert "'email': '[redacted]'" in named


def test_a_repr_of_its_own_is_kept(disposable_classes: None) -> None:
    @dataclass(frozen=True)
    class Shown(DomainEvent):
        event_type = "unit_sensitive.shown"
        secret: Annotated[str, Sensitive]

        def __repr__(self) -> str:
            return "Shown(mine)"

    assert repr(Shown(secret="x")) == "Shown(mine)"


def test_an_event_class_that_is_no_dataclass_has_the_default_repr(
    disposable_classes: None,
) -> None:
    class Plain(DomainEvent):
        event_type = "unit_sensitive.plain"

    assert repr(Plain()).startswith("<tests.unit.test_sensitive.")


def test_redact_copies_the_payload_leaving_the_stored_one() -> None:
    stored = {"customer_id": 7, "email": EMAIL, "address": {"street": STREET, "city": "Lyon"}}

    shown = redact(CustomerRegistered.event_type, stored)

    assert shown == {
        "customer_id": 7,
        "email": REDACTED,
        "address": {"street": REDACTED, "city": "Lyon"},
    }
    assert stored["email"] == EMAIL
    assert stored["address"]["street"] == STREET


# Payload errors ------------------------------------------------------------------------------


def test_a_payload_error_names_a_sensitive_field_without_its_value(newsletter: None) -> None:
    wrong: Any = 612345678
    with pytest.raises(PayloadError) as typed:
        publish(CustomerRegistered(customer_id=7, email=wrong))
    with pytest.raises(PayloadError) as named:
        publish(NEWSLETTER, {"user_id": 7, "email": {b"bytes"}})

    assert str(typed.value) == "CustomerRegistered.email: str expected, got int [redacted]."
    assert str(named.value) == (
        "sensitive_tests.newsletter_signup payload['email']: JSON value expected, got set "
        "[redacted]."
    )
    with pytest.raises(PayloadError, match=r"must be a dict, got list \[redacted\]\.$"):
        publish(NEWSLETTER, [EMAIL])  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match="got str 'not an int'"):
        publish(CustomerRegistered(customer_id="not an int", email=EMAIL))  # type: ignore[arg-type]


# Failures and their logs ------------------------------------------------------------------


@override_settings(DOMAIN_EVENTS=NO_BACKOFF)
def test_recorded_failures_and_their_logs_redact_the_values(
    receiver_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    @receiver(CustomerRegistered, name="unit_sensitive.mailer", max_attempts=2)
    def mailer(event: CustomerRegistered) -> None:
        raise ConnectionError(f"mailbox {event.email} at {event.address!r} refused {event!r}")

    with caplog.at_level(logging.DEBUG, "django_domain_events"), use_dispatcher("deferred"):
        publish(registered())
        drain()

    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.DEAD
    recorded = [delivery.last_error, delivery.traceback]
    for attempt in DeliveryAttempt.objects.all():
        recorded += [attempt.error, attempt.traceback]
    assert len(recorded) == 6
    logged = caplog.text + "".join(
        logging.Formatter().formatException(record.exc_info)
        for record in caplog.records
        if record.exc_info
    )
    for text in [*recorded, logged]:
        assert EMAIL not in text
        assert STREET not in text
        assert "3 Guest Lane" not in text
    # The nested dataclass's own repr shows the street; the recorded text is scrubbed of it.
    assert delivery.last_error == (
        "ConnectionError: mailbox [redacted] at Address(street='[redacted]', city='Lyon') "
        "refused CustomerRegistered(customer_id=7, email=[redacted], phone=[redacted], "
        "address=Address(street=[redacted], city='Lyon'), "
        "guests=[Address(street=[redacted], city='Nice')])"
    )
    assert "in mailer" in delivery.traceback  # the traceback is kept, only the values go
    assert "is dead after 2 attempt(s): ConnectionError: mailbox [redacted]" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text


@override_settings(DOMAIN_EVENTS=NO_BACKOFF)
def test_a_named_event_s_failures_redact_its_declared_fields(
    receiver_registry: Registry, newsletter: None
) -> None:
    @receiver(NEWSLETTER, name="unit_sensitive.welcome", max_attempts=1)
    def welcome(event: NamedEvent) -> None:
        raise ValueError(f"no such mailbox: {event.payload['email']!r} in {event!r}")

    with use_dispatcher("deferred"):
        publish(NEWSLETTER, {"user_id": 7, "email": EMAIL})
        drain()

    delivery = Delivery.objects.get()
    assert EMAIL not in delivery.last_error
    assert EMAIL not in delivery.traceback
    assert delivery.last_error.startswith("ValueError: no such mailbox: '[redacted]' in ")


# The admin -------------------------------------------------------------------------------


@override_settings(DOMAIN_EVENTS=NO_BACKOFF)
def test_the_admin_pages_show_sensitive_values_redacted(
    receiver_registry: Registry, newsletter: None
) -> None:
    @receiver(CustomerRegistered, name="unit_sensitive.failing", max_attempts=1)
    def failing(event: CustomerRegistered) -> None:
        raise ValueError(f"cannot mail {event.email}")

    with use_dispatcher("deferred"):
        publish(registered())
        publish(NEWSLETTER, {"user_id": 7, "email": EMAIL})
        drain()
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))

    pages = [
        reverse("admin:django_domain_events_outboxevent_change", args=(event.pk,))
        for event in OutboxEvent.objects.all()
    ]
    pages.append(
        reverse("admin:django_domain_events_delivery_change", args=(Delivery.objects.get().pk,))
    )
    for page in pages:
        response = client.get(page)
        html = response.content.decode()
        assert response.status_code == 200
        assert EMAIL not in html
        assert STREET not in html
        assert REDACTED in html
    typed = OutboxEvent.objects.get(event_type=CustomerRegistered.event_type)
    page = reverse("admin:django_domain_events_outboxevent_change", args=(typed.pk,))
    assert "Lyon" in client.get(page).content.decode()  # what is not sensitive shows


# Checks --------------------------------------------------------------------------------------


def ids(messages: list[CheckMessage]) -> list[str]:
    return [message.id or "" for message in messages]


def test_the_shared_declarations_pass_the_checks(newsletter: None) -> None:
    assert check_sensitive_fields() == []


def test_a_data_subject_naming_no_field_is_e070(disposable_classes: None) -> None:
    @dataclass(frozen=True)
    class Lost(DomainEvent):
        event_type = "unit_sensitive.lost"
        data_subject = "user"
        user_id: int
        email: Annotated[str, Sensitive]

    @dataclass(frozen=True)
    class LostNested(DomainEvent):
        event_type = "unit_sensitive.lost_nested"
        data_subject = "address.id"
        address: Address

    (lost, nested) = check_sensitive_fields()

    assert ids([lost, nested]) == ["django_domain_events.E070"] * 2
    assert lost.msg.endswith("Lost.data_subject = 'user': Lost has no field 'user'.")
    assert nested.msg.endswith("data_subject = 'address.id': Address has no field 'id'.")


def test_declaring_a_typed_event_sensitive_is_e071(newsletter: None) -> None:
    declare_sensitive(CustomerRegistered.event_type, fields=("email",), data_subject="id")

    (error,) = check_sensitive_fields()

    assert error.id == "django_domain_events.E071"
    assert "tests.sensitive_events.CustomerRegistered has that event_type" in error.msg


def test_an_erasable_field_that_cannot_hold_the_marker_is_w072(disposable_classes: None) -> None:
    @dataclass(frozen=True)
    class Born(DomainEvent):
        event_type = "unit_sensitive.born"
        data_subject = "user_id"
        user_id: int
        year: Annotated[int, Sensitive]
        nickname: Annotated[str | None, Sensitive] = None
        code: Annotated[int | str, Sensitive] = 0

    @dataclass(frozen=True)
    class NotErasable(DomainEvent):
        event_type = "unit_sensitive.not_erasable"
        year: Annotated[int, Sensitive]

    (warning,) = check_sensitive_fields()

    assert warning.id == "django_domain_events.W072"
    assert "Born.year is sensitive and erasable, but its type int cannot hold" in warning.msg


def test_an_ordering_key_from_a_sensitive_field_is_w073(disposable_classes: None) -> None:
    @dataclass(frozen=True)
    class Keyed(DomainEvent):
        event_type = "unit_sensitive.keyed"
        ordering_key = "email"
        email: Annotated[str, Sensitive]

    (warning,) = check_sensitive_fields()

    assert warning.id == "django_domain_events.W073"
    assert "Keyed.ordering_key = 'email' names a sensitive field" in warning.msg

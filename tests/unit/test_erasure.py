"""Erasing a data subject's sensitive values (``erase_sensitive``): only that subject's events
change, only their sensitive values, the rows and deliveries stay, each event's headers say
when; recorded failures are scrubbed; a delivery run afterwards gets the erased payload."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_domain_events import NamedEvent, publish, publish_many, receiver, use_dispatcher
from django_domain_events.declaration.registry import Registry
from django_domain_events.declaration.sensitivity import ERASED
from django_domain_events.models import Delivery, DeliveryAttempt, OutboxEvent
from django_domain_events.operations.erasure import (
    ERASED_AT,
    ERASED_FIELDS,
    erasable_event_types,
    erase_sensitive,
)
from django_domain_events.operations.selection import SelectionError
from django_domain_events.testing import drain
from tests.sensitive_events import (
    EMAIL,
    NEWSLETTER,
    OTHER_EMAIL,
    STREET,
    Address,
    Customer,
    CustomerRegistered,
    TicketOpened,
    newsletter_declared,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def newsletter() -> Any:
    with newsletter_declared():
        yield


@pytest.fixture
def stored(receiver_registry: Registry, newsletter: None) -> None:
    """Events of subjects 7 and 8 (typed and named), each with one delivery not yet run."""
    receiver(CustomerRegistered, name="unit_erasure.crm")(lambda event: None)
    with use_dispatcher("deferred"):
        publish_many(
            [
                CustomerRegistered(
                    customer_id=7,
                    email=EMAIL,
                    address=Address(street=STREET, city="Lyon"),
                    guests=[Address(street="3 Guest Lane", city="Nice")],
                ),
                CustomerRegistered(customer_id=8, email=OTHER_EMAIL),
                NamedEvent(NEWSLETTER, {"user_id": 7, "email": EMAIL, "source": "footer"}),
                NamedEvent(NEWSLETTER, {"user_id": "8", "email": OTHER_EMAIL}),
                TicketOpened(ticket=1, customer=Customer(id="7", email=EMAIL)),
            ]
        )


def payloads() -> dict[tuple[str, Any], dict[str, Any]]:
    found = {}
    for event in OutboxEvent.objects.all():
        subject = event.payload.get("customer_id", event.payload.get("user_id"))
        if event.event_type == TicketOpened.event_type:
            subject = event.payload["customer"]["id"]
        found[event.event_type.split(".")[1], subject] = event.payload
    return found


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("erase_sensitive", *args, stdout=out)
    return out.getvalue()


def test_only_the_subject_s_sensitive_values_are_erased(stored: None) -> None:
    before = payloads()

    result = erase_sensitive("7")

    after = payloads()
    assert after["customer_registered", 7] == {
        **before["customer_registered", 7],
        "email": ERASED,
        "address": {"street": ERASED, "city": "Lyon"},
        "guests": [{"street": ERASED, "city": "Nice"}],
    }
    assert after["newsletter_signup", 7] == {"user_id": 7, "email": ERASED, "source": "footer"}
    assert after["ticket_opened", "7"] == {"ticket": 1, "customer": {"id": "7", "email": ERASED}}
    assert after["customer_registered", 8] == before["customer_registered", 8]
    assert after["newsletter_signup", "8"] == before["newsletter_signup", "8"]
    assert result.events == {
        CustomerRegistered.event_type: 1,
        NEWSLETTER: 1,
        TicketOpened.event_type: 1,
    }
    # phone was "": empty and None values stay as they are, and are not counted.
    assert result.values == {
        CustomerRegistered.event_type: 3,
        NEWSLETTER: 1,
        TicketOpened.event_type: 1,
    }
    assert OutboxEvent.objects.count() == 5
    assert Delivery.objects.count() == 2


def test_each_erased_event_records_when_and_which_fields(stored: None) -> None:
    erase_sensitive("7", event_types=[NEWSLETTER])

    erased = OutboxEvent.objects.get(event_type=NEWSLETTER, payload__user_id=7)
    assert erased.headers[ERASED_FIELDS] == ["email"]
    assert erased.headers[ERASED_AT].startswith("20")
    assert not OutboxEvent.objects.filter(headers__has_key=ERASED_AT).exclude(pk=erased.pk)


def test_erasing_again_changes_nothing(stored: None) -> None:
    erase_sensitive("7")
    first = payloads()

    again = erase_sensitive("7")

    assert again.total_events == 0
    assert payloads() == first


def test_a_string_subject_finds_ids_stored_as_numbers_or_strings(stored: None) -> None:
    result = erase_sensitive("8", event_types=[NEWSLETTER, CustomerRegistered.event_type])

    assert result.events == {CustomerRegistered.event_type: 1, NEWSLETTER: 1}


def test_batches_each_in_a_transaction_of_their_own(
    receiver_registry: Registry, newsletter: None
) -> None:
    publish_many(
        [NamedEvent(NEWSLETTER, {"user_id": 7, "email": f"{n}@x.example"}) for n in range(5)]
    )
    batches: list[tuple[str, int, int]] = []

    erase_sensitive("7", batch_size=2, on_batch=lambda *batch: batches.append(batch))

    assert batches == [(NEWSLETTER, 2, 2), (NEWSLETTER, 2, 2), (NEWSLETTER, 1, 1)]
    assert set(OutboxEvent.objects.values_list("payload__email", flat=True)) == {ERASED}


def test_a_dry_run_counts_and_writes_nothing(stored: None) -> None:
    before = payloads()

    output = run("--subject", "7", "--dry-run")

    assert output.startswith("Dry run: would erase 5 values in 3 events (")
    assert payloads() == before


def test_the_command_erases_and_reports(stored: None) -> None:
    output = run("--subject", "7", "--event-type", NEWSLETTER)

    assert output.splitlines()[-1] == (
        f"Erased 1 values in 1 events ({NEWSLETTER}: 1 events, 1 values); scrubbed 0 "
        f"recorded failures."
    )
    assert payloads()["customer_registered", 7]["email"] == EMAIL


def test_a_delivery_run_after_erasure_gets_the_erased_payload(stored: None) -> None:
    got: list[CustomerRegistered] = []
    receiver(CustomerRegistered, name="unit_erasure.late")(got.append)
    Delivery.objects.all().delete()
    with use_dispatcher("deferred"):
        publish(CustomerRegistered(customer_id=7, email=EMAIL))

    erase_sensitive("7", event_types=[CustomerRegistered.event_type])
    drain()

    assert [event.email for event in got] == [ERASED]


@override_settings(DOMAIN_EVENTS={"RETRY_BASE_DELAY": 0, "RETRY_MAX_DELAY": 0})
def test_recorded_failures_are_scrubbed_of_the_erased_values(
    receiver_registry: Registry, newsletter: None
) -> None:
    @receiver(NEWSLETTER, name="unit_erasure.failing", max_attempts=1)
    def failing(event: NamedEvent) -> None:
        raise ValueError("refused")

    with use_dispatcher("deferred"):
        publish(NEWSLETTER, {"user_id": 7, "email": EMAIL})
        drain()
    # As written before the field was declared sensitive.
    Delivery.objects.update(last_error=f"refused {EMAIL}", traceback=f"... {EMAIL!r} ...")
    DeliveryAttempt.objects.update(error=f"refused {EMAIL}")

    result = erase_sensitive("7")

    delivery = Delivery.objects.get()
    assert (delivery.last_error, delivery.traceback) == (f"refused {ERASED}", f"... '{ERASED}' ...")
    assert DeliveryAttempt.objects.get().error == f"refused {ERASED}"
    assert result.scrubbed_failures == 2


def test_only_types_with_a_subject_and_sensitive_fields_are_erasable(newsletter: None) -> None:
    erasable = erasable_event_types()

    assert {CustomerRegistered.event_type, NEWSLETTER, TicketOpened.event_type} <= set(erasable)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subject", " "], "Give the data subject to erase"),
        (
            ["--subject", "7", "--event-type", "unit_erasure.unknown"],
            "Event type 'unit_erasure.unknown' cannot be erased: it declares no sensitive fields.",
        ),
        (["--subject", "7", "--batch-size", "0"], "--batch-size is 0; give a number >= 1."),
        (["--subject", "7", "--database", "nowhere"], "--database 'nowhere' is not in DATABASES"),
    ],
)
def test_bad_options_are_command_errors(newsletter: None, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as raised:
        run(*args)

    assert message in str(raised.value)


def test_a_named_event_without_a_subject_cannot_be_erased(newsletter: None) -> None:
    from django_domain_events import declare_sensitive

    declare_sensitive("unit_erasure.anonymous", fields=("email",))

    with pytest.raises(SelectionError, match="it declares no data subject"):
        erase_sensitive("7", event_types=["unit_erasure.anonymous"])

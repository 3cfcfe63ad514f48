"""EventRecordingMixin: events recorded on an aggregate are published when it is saved, in the
save's transaction."""

from __future__ import annotations

import contextlib
import pickle
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, models, transaction

from django_domain_events import DomainEvent, EventRecordingMixin, NamedEvent, receiver
from django_domain_events.declaration.registry import Registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.testapp.models import Account

transactional = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class AccountOpened(DomainEvent):
    event_type = "unit_aggregates.account_opened"

    account_id: int
    owner: str


@dataclass(frozen=True)
class AccountCredited(DomainEvent):
    event_type = "unit_aggregates.account_credited"

    account_id: int
    amount: Decimal


class Boom(Exception):
    pass


@pytest.fixture
def received(receiver_registry: Registry) -> list[DomainEvent]:
    """What the receivers of both events got, in order."""
    got: list[DomainEvent] = []
    receiver(AccountOpened, name="unit.aggregates.opened")(got.append)
    receiver(AccountCredited, name="unit.aggregates.credited")(got.append)
    return got


def credit(account: Account, amount: Decimal) -> None:
    account.balance += amount
    account.record_event(AccountCredited(account_id=account.pk, amount=amount))


@transactional
def test_saving_inside_a_transaction_publishes_the_recorded_events_in_it(
    received: list[DomainEvent],
) -> None:
    account = Account.objects.create(owner="ada")
    credit(account, Decimal("10.00"))
    credit(account, Decimal("5.00"))
    assert len(account.recorded_events) == 2

    with transaction.atomic():
        account.save()
        # Written in this transaction, not yet dispatched; and cleared from the instance.
        assert OutboxEvent.objects.count() == 2
        assert received == []
        assert list(account.recorded_events) == []

    assert received == [
        AccountCredited(account_id=account.pk, amount=Decimal("10.00")),
        AccountCredited(account_id=account.pk, amount=Decimal("5.00")),
    ]
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


@transactional
def test_saving_outside_a_transaction_writes_row_and_events_in_one_of_their_own(
    received: list[DomainEvent],
) -> None:
    account = Account.objects.create(owner="ada")
    credit(account, Decimal("1.00"))

    account.save()

    assert not connection.in_atomic_block
    assert Account.objects.get().balance == Decimal("1.00")
    assert received == [AccountCredited(account_id=account.pk, amount=Decimal("1.00"))]


@transactional
def test_a_rolled_back_save_publishes_nothing(received: list[DomainEvent]) -> None:
    account = Account.objects.create(owner="ada")
    credit(account, Decimal("10.00"))

    def save_then_fail() -> None:
        with transaction.atomic():
            account.save()
            raise Boom

    with pytest.raises(Boom):
        save_then_fail()

    assert Account.objects.get().balance == Decimal("0.00")
    assert not OutboxEvent.objects.exists()
    assert received == []
    # Handed over to the rolled-back transaction: the instance does not get them back.
    assert account.recorded_events == ()


@transactional
def test_a_save_rolled_back_by_its_savepoint_publishes_nothing_and_the_rest_commits(
    received: list[DomainEvent],
) -> None:
    first = Account.objects.create(owner="ada")
    second = Account.objects.create(owner="grace")
    credit(first, Decimal("1.00"))
    credit(second, Decimal("2.00"))

    with transaction.atomic():
        with contextlib.suppress(Boom), transaction.atomic():
            first.save()
            raise Boom
        second.save()

    assert received == [AccountCredited(account_id=second.pk, amount=Decimal("2.00"))]
    assert list(OutboxEvent.objects.values_list("payload__account_id", flat=True)) == [second.pk]


@transactional
def test_a_failing_save_keeps_the_events_recorded_and_publishes_none(
    received: list[DomainEvent],
) -> None:
    Account.objects.create(owner="ada")
    duplicate = Account(owner="ada")
    duplicate.record_event(NamedEvent("unit_aggregates.opened_named", {"owner": "ada"}))

    with transaction.atomic():
        with pytest.raises(IntegrityError):
            duplicate.save()
        # The save's own savepoint rolled back: the caller's transaction carries on.
        Account.objects.create(owner="grace")

    assert len(duplicate.recorded_events) == 1
    assert not OutboxEvent.objects.exists()
    assert Account.objects.count() == 2


@transactional
def test_an_invalid_event_fails_the_save_and_leaves_no_row(received: list[DomainEvent]) -> None:
    account = Account(owner="ada")
    account.record_event(AccountCredited(account_id=1, amount=1.5))  # type: ignore[arg-type]

    with pytest.raises(TypeError, match=r"AccountCredited\.amount: Decimal expected"):
        account.save()

    assert not Account.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert len(account.recorded_events) == 1


@transactional
def test_a_recorded_function_builds_the_event_after_the_insert_assigned_the_pk(
    received: list[DomainEvent],
) -> None:
    account = Account(owner="ada")
    account.record_event(lambda saved: AccountOpened(account_id=saved.pk, owner=saved.owner))
    pk_before: object = account.pk

    account.save()

    assert pk_before is None
    assert received == [AccountOpened(account_id=account.pk, owner="ada")]


@transactional
def test_save_without_recorded_events_publishes_nothing() -> None:
    Account.objects.create(owner="ada").save()

    assert not OutboxEvent.objects.exists()


@transactional
def test_save_publishes_on_the_database_it_saves_to(received: list[DomainEvent]) -> None:
    account = Account.objects.create(owner="ada")
    credit(account, Decimal("3.00"))

    account.save(update_fields=["balance"], using="default")

    assert OutboxEvent.objects.using("default").count() == 1


def test_the_mixin_must_come_before_the_model_base() -> None:
    with pytest.raises(TypeError, match=r"Write class Misordered\(EventRecordingMixin, models"):

        class Misordered(models.Model, EventRecordingMixin):  # type: ignore[misc,metaclass]  # noqa: DJ008
            class Meta:
                app_label = "testapp"


def test_record_event_refuses_classes_and_other_values() -> None:
    account = Account(owner="ada")

    with pytest.raises(TypeError, match=r"record_event\(AccountOpened\): pass an instance"):
        account.record_event(AccountOpened)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a DomainEvent, a NamedEvent or a function"):
        account.record_event(42)  # type: ignore[arg-type]
    assert account.recorded_events == ()


def test_a_pickled_copy_does_not_carry_the_recorded_events() -> None:
    account = Account(owner="ada", balance=Decimal("1.00"))
    account.record_event(lambda saved: AccountOpened(account_id=saved.pk, owner="ada"))

    copy = pickle.loads(pickle.dumps(account))

    assert copy.owner == "ada"
    assert copy.recorded_events == ()
    assert len(account.recorded_events) == 1

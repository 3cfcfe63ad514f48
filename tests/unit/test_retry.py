"""The retry policy: exponential backoff with full jitter, capped, and how many attempts a
receiver gets."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.test import override_settings
from django.utils import timezone

from django_domain_events import RetryAfter, publish, receiver
from django_domain_events.declaration.receivers import make_receiver
from django_domain_events.declaration.registry import Receiver, Registry
from django_domain_events.declaration.retry import RetryPolicy, policy_for
from django_domain_events.models import Delivery, DeliveryState
from django_domain_events.testing import drain
from tests.testapp.events import Pinged


def a_receiver(max_attempts: int | None = None) -> Receiver:
    return make_receiver(Pinged, lambda event: None, max_attempts=max_attempts)


@pytest.fixture
def ceiling_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jitter always picks the top of its range, so delays are the exponential ceiling."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high)


# RetryPolicy.delay ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 12, 20])
def test_delay_is_within_zero_and_the_capped_exponential_ceiling(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=30, base_delay=2.0, max_delay=300.0)
    ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))

    delays = [policy.delay(attempt) for _ in range(300)]

    assert all(0 <= delay <= ceiling for delay in delays)
    # Full jitter: spread over the whole range, not bunched at the ceiling.
    assert min(delays) < ceiling / 4
    assert max(delays) > ceiling * 3 / 4


def test_delay_ceiling_doubles_with_each_attempt_until_the_cap(ceiling_delays: None) -> None:
    policy = RetryPolicy(max_attempts=30, base_delay=1.5, max_delay=100.0)

    delays = [policy.delay(attempt) for attempt in range(1, 10)]

    assert delays == [1.5, 3.0, 6.0, 12.0, 24.0, 48.0, 96.0, 100.0, 100.0]


def test_delay_never_goes_below_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    policy = RetryPolicy(max_attempts=5, base_delay=2.0, max_delay=60.0)

    assert [policy.delay(attempt) for attempt in (1, 2, 3)] == [0, 0, 0]


@pytest.mark.parametrize("attempt", [64, 1100])
def test_delay_stays_capped_for_very_late_attempts(ceiling_delays: None, attempt: int) -> None:
    # A receiver allowed thousands of attempts (retrying for days) must keep getting the cap,
    # not an overflow from base_delay * 2 ** (attempt - 1).
    policy = RetryPolicy(max_attempts=10_000, base_delay=2.0, max_delay=3600.0)

    assert policy.delay(attempt) == 3600.0


def test_exhausted_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=2.0, max_delay=60.0)

    assert [policy.exhausted(attempt) for attempt in (1, 2, 3, 4)] == [False, False, True, True]


# policy_for -----------------------------------------------------------------------------------


def test_policy_defaults() -> None:
    with override_settings(DOMAIN_EVENTS={}):
        assert policy_for(None) == RetryPolicy(max_attempts=5, base_delay=2.0, max_delay=3600.0)


def test_policy_reads_the_settings_on_each_call() -> None:
    settings = {"MAX_ATTEMPTS": 9, "RETRY_BASE_DELAY": 0.5, "RETRY_MAX_DELAY": 30}
    with override_settings(DOMAIN_EVENTS=settings):
        assert policy_for(None) == RetryPolicy(max_attempts=9, base_delay=0.5, max_delay=30.0)
        assert policy_for(a_receiver()).max_attempts == 9


def test_receiver_max_attempts_overrides_the_setting() -> None:
    with override_settings(DOMAIN_EVENTS={"MAX_ATTEMPTS": 9, "RETRY_BASE_DELAY": 0.5}):
        policy = policy_for(a_receiver(max_attempts=2))

    assert policy == RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=3600.0)


def test_retry_after_refuses_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        RetryAfter(-1)


# The policy applied to deliveries -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_failed_delivery_is_scheduled_with_the_configured_backoff(
    receiver_registry: Registry, ceiling_delays: None
) -> None:
    @receiver(Pinged, name="unit.retry.backoff", max_attempts=4)
    def fails(event: Pinged) -> None:
        raise ConnectionError("service unavailable")

    with override_settings(DOMAIN_EVENTS={"RETRY_BASE_DELAY": 100, "RETRY_MAX_DELAY": 150}):
        publish(Pinged(n=1))
        first = Delivery.objects.get()
        drain(max_rounds=1)
        second = Delivery.objects.get()
        drain(max_rounds=1)
        third = Delivery.objects.get()

    scheduled = [
        row.next_attempt_at - row.last_attempt_at  # type: ignore[operator]
        for row in (first, second, third)
    ]
    assert scheduled == [dt.timedelta(seconds=s) for s in (100, 150, 150)]
    assert [row.attempts for row in (first, second, third)] == [1, 2, 3]
    assert third.state == DeliveryState.FAILED


@pytest.mark.django_db(transaction=True)
def test_max_attempts_setting_applies_to_receivers_without_their_own(
    receiver_registry: Registry,
) -> None:
    @receiver(Pinged, name="unit.retry.default_limit")
    def fails(event: Pinged) -> None:
        raise ConnectionError("service unavailable")

    @receiver(Pinged, name="unit.retry.own_limit", max_attempts=4)
    def also_fails(event: Pinged) -> None:
        raise ConnectionError("service unavailable")

    with override_settings(DOMAIN_EVENTS={"MAX_ATTEMPTS": 2}):
        publish(Pinged(n=1))
        drain()

    attempts = dict(Delivery.objects.values_list("receiver", "attempts"))
    assert attempts == {"unit.retry.default_limit": 2, "unit.retry.own_limit": 4}
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DEAD}


@pytest.mark.django_db(transaction=True)
def test_a_late_failure_of_a_long_retrying_receiver_is_recorded(
    receiver_registry: Registry,
) -> None:
    @receiver(Pinged, name="unit.retry.patient", max_attempts=5000)
    def fails(event: Pinged) -> None:
        raise ConnectionError("still down")

    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        publish(Pinged(n=1))
    Delivery.objects.update(state=DeliveryState.FAILED, attempts=1100)

    result = drain(max_rounds=1)

    assert result.failed == 1
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 1101)
    assert delivery.last_error == "ConnectionError: still down"
    assert delivery.next_attempt_at is not None


@pytest.mark.django_db(transaction=True)
def test_retry_after_counts_towards_max_attempts(receiver_registry: Registry) -> None:
    @receiver(Pinged, name="unit.retry.retry_after", max_attempts=2)
    def throttled(event: Pinged) -> None:
        raise RetryAfter(0)

    before = timezone.now()
    publish(Pinged(n=1))
    first = Delivery.objects.get()
    assert first.state == DeliveryState.FAILED
    assert first.next_attempt_at == first.last_attempt_at
    assert first.last_attempt_at is not None
    assert first.last_attempt_at >= before

    assert drain().dead == 1
    assert Delivery.objects.get().attempts == 2

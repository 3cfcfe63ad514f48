"""``PUBLISH_OUTSIDE_ATOMIC``: a publish outside ``atomic()`` ignored, warned about or refused,
and its bad values reported by check E050."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import override_settings

from django_domain_events import (
    PublishedOutsideAtomic,
    PublishOutsideAtomicError,
    publish,
)
from django_domain_events.checks import check_settings
from django_domain_events.models import OutboxEvent

# Django's TestCase wraps each test in atomic(): these need real commits.
pytestmark = pytest.mark.django_db(transaction=True)

NOTED = "unit_outside_atomic.noted"


def test_by_default_a_publish_outside_atomic_runs_in_a_transaction_of_its_own() -> None:
    publish(NOTED, {})

    assert OutboxEvent.objects.count() == 1


@override_settings(DOMAIN_EVENTS={"PUBLISH_OUTSIDE_ATOMIC": "warn"})
def test_warn_names_the_caller_and_the_fix_and_still_publishes() -> None:
    with pytest.warns(
        PublishedOutsideAtomic, match=r"transaction\.atomic\(using='default'\)"
    ) as seen:
        publish(NOTED, {})

    assert seen[0].filename == __file__
    assert issubclass(PublishedOutsideAtomic, RuntimeWarning)
    assert OutboxEvent.objects.count() == 1


@override_settings(DOMAIN_EVENTS={"PUBLISH_OUTSIDE_ATOMIC": "raise"})
def test_raise_refuses_the_publish_and_writes_nothing() -> None:
    with pytest.raises(PublishOutsideAtomicError, match=r"outside transaction\.atomic\(\)"):
        publish(NOTED, {})

    assert not OutboxEvent.objects.exists()


@override_settings(DOMAIN_EVENTS={"PUBLISH_OUTSIDE_ATOMIC": "raise"})
def test_inside_atomic_nothing_is_said() -> None:
    with transaction.atomic():
        publish(NOTED, {})

    assert OutboxEvent.objects.count() == 1


@pytest.mark.parametrize("value", ["loud", True, None])
def test_e050_a_bad_value(value: object) -> None:
    with override_settings(DOMAIN_EVENTS={"PUBLISH_OUTSIDE_ATOMIC": value}):
        [error] = [e for e in check_settings() if e.id == "django_domain_events.E050"]

    assert error.msg == (
        f"DOMAIN_EVENTS['PUBLISH_OUTSIDE_ATOMIC'] is {value!r}; it must be 'ignore', 'warn' or "
        f"'raise'."
    )
    assert error.hint is not None
    assert "The default is 'ignore'" in error.hint


@pytest.mark.parametrize("value", ["ignore", "warn", "raise"])
def test_e050_good_values_pass(value: str) -> None:
    with override_settings(DOMAIN_EVENTS={"PUBLISH_OUTSIDE_ATOMIC": value}):
        assert check_settings() == []

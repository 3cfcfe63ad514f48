"""DOMAIN_EVENTS["MAX_RECEIVERS_PER_EVENT"]: a limit on receivers per event type, checked at
start-up."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_domain_events import handles, receiver, receiver_class
from django_domain_events.checks import check_receiver_limit, check_settings
from django_domain_events.declaration.registry import Registry

EVENT = "unit_limit.happened"


def e011() -> list[str]:
    return [e.msg for e in check_receiver_limit() if e.id == "django_domain_events.E011"]


@pytest.fixture
def three_receivers(receiver_registry: Registry) -> None:
    receiver(EVENT, name="unit.limit.a")(print)
    receiver(EVENT, name="unit.limit.b")(print)

    @receiver_class
    class Grouped:
        @handles(EVENT, name="unit.limit.c")
        def on_happened(self, event: object) -> None: ...

    receiver("unit_limit.other", name="unit.limit.other")(print)


@pytest.mark.usefixtures("three_receivers")
def test_more_receivers_than_the_limit_is_a_check_error_naming_them() -> None:
    with override_settings(DOMAIN_EVENTS={"MAX_RECEIVERS_PER_EVENT": 2}):
        [error] = check_receiver_limit()

    assert error.id == "django_domain_events.E011"
    assert error.msg == (
        "Event type 'unit_limit.happened' has 3 receivers, more than "
        "DOMAIN_EVENTS['MAX_RECEIVERS_PER_EVENT'] = 2: unit.limit.a, unit.limit.b, unit.limit.c."
    )
    assert error.hint


@pytest.mark.usefixtures("three_receivers")
@pytest.mark.parametrize("configured", [{}, {"MAX_RECEIVERS_PER_EVENT": None}])
def test_no_limit_by_default(configured: dict[str, object]) -> None:
    with override_settings(DOMAIN_EVENTS=configured):
        assert e011() == []


@pytest.mark.usefixtures("three_receivers")
def test_receivers_up_to_the_limit_pass() -> None:
    with override_settings(DOMAIN_EVENTS={"MAX_RECEIVERS_PER_EVENT": 3}):
        assert e011() == []


@pytest.mark.parametrize("value", [0, -1, "3", 2.5, True])
def test_a_malformed_limit_is_e002_and_not_applied(value: object) -> None:
    with override_settings(DOMAIN_EVENTS={"MAX_RECEIVERS_PER_EVENT": value}):
        [error] = [e for e in check_settings() if e.id == "django_domain_events.E002"]
        assert "MAX_RECEIVERS_PER_EVENT" in error.msg
        assert e011() == []

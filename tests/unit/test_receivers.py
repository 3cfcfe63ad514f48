"""The @receiver decorator, the registry, and discovery of receivers in installed apps."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.utils.module_loading import autodiscover_modules

from django_domain_events import Envelope, Receiver, receiver
from django_domain_events.declaration.registry import Registry, registry
from tests.testapp import handlers as testapp_handlers
from tests.testapp.events import OrderPlaced

GOOD_APP = "tests.unit.autodiscover_apps.ad_good"
BROKEN_APP = "tests.unit.autodiscover_apps.ad_broken"
PLAIN_APP = "tests.unit.autodiscover_apps.ad_plain"
GOOD_APP_RECEIVERS = ["autodiscover.good.from_handlers", "autodiscover.good.from_receivers"]


def module_level_handler(event: object) -> None:
    """A receiver function defined at module level, as in an app's handlers.py."""


def names(of: Registry) -> list[str]:
    return [registered.name for registered in of.all()]


def only(of: Registry) -> Receiver:
    [registered] = of.all()
    return registered


# The decorator --------------------------------------------------------------------------------


def test_default_name_is_module_and_qualname(receiver_registry: Registry) -> None:
    receiver("unit_receivers.thing_happened")(module_level_handler)

    assert names(receiver_registry) == ["tests.unit.test_receivers.module_level_handler"]


def test_default_name_of_a_nested_function_includes_its_qualname(
    receiver_registry: Registry,
) -> None:
    @receiver("unit_receivers.thing_happened")
    def handle(event: object) -> None: ...

    assert names(receiver_registry) == [
        "tests.unit.test_receivers."
        "test_default_name_of_a_nested_function_includes_its_qualname.<locals>.handle"
    ]


def test_name_can_be_given(receiver_registry: Registry) -> None:
    receiver("unit_receivers.thing_happened", name="crm.push")(module_level_handler)

    assert names(receiver_registry) == ["crm.push"]
    assert receiver_registry.get("crm.push") == only(receiver_registry)


def test_decorator_returns_the_function_unchanged(receiver_registry: Registry) -> None:
    def handle(event: object) -> None: ...

    async def ahandle(event: object) -> None: ...

    assert receiver("unit_receivers.a")(handle) is handle
    assert receiver("unit_receivers.a")(ahandle) is ahandle


def test_receiver_of_an_event_class_listens_to_its_event_type(receiver_registry: Registry) -> None:
    receiver(OrderPlaced)(module_level_handler)

    registered = only(receiver_registry)
    assert registered.event_type == "testapp.OrderPlaced"
    assert registered.target is OrderPlaced
    assert registered.func is module_level_handler


def test_receiver_of_a_named_event(receiver_registry: Registry) -> None:
    receiver("billing.invoice_paid")(module_level_handler)

    registered = only(receiver_registry)
    assert registered.event_type == "billing.invoice_paid"
    assert registered.target == "billing.invoice_paid"


def test_options_are_recorded_and_default_to_none(receiver_registry: Registry) -> None:
    receiver("unit_receivers.a", name="plain")(module_level_handler)
    receiver("unit_receivers.a", name="tuned", dispatcher="deferred", queue="crm", max_attempts=10)(
        module_level_handler
    )

    plain, tuned = receiver_registry.all()
    assert (plain.dispatcher, plain.queue, plain.max_attempts) == (None, None, None)
    assert (tuned.dispatcher, tuned.queue, tuned.max_attempts) == ("deferred", "crm", 10)


def test_async_receivers_are_detected(receiver_registry: Registry) -> None:
    @receiver("unit_receivers.a", name="sync")
    def sync_handler(event: object) -> None: ...

    @receiver("unit_receivers.a", name="async")
    async def async_handler(event: object) -> None: ...

    assert receiver_registry.get("sync").is_async is False  # type: ignore[union-attr]
    assert receiver_registry.get("async").is_async is True  # type: ignore[union-attr]


def _event_only(event: object) -> None: ...


def _with_envelope(event: object, envelope: Envelope) -> None: ...


def _keyword_envelope(event: object, *, envelope: Envelope | None = None) -> None: ...


async def _async_with_envelope(event: object, envelope: Envelope) -> None: ...


def _other_names(event: object, env: Envelope, **kwargs: object) -> None: ...


@pytest.mark.parametrize(
    ("func", "takes_envelope"),
    [
        (_event_only, False),
        (_with_envelope, True),
        (_keyword_envelope, True),
        (_async_with_envelope, True),
        (_other_names, False),
        (print, False),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_envelope_parameter_is_detected_by_name(
    receiver_registry: Registry, func: Callable[..., Any], takes_envelope: bool
) -> None:
    receiver("unit_receivers.a", name="r")(func)

    assert only(receiver_registry).takes_envelope is takes_envelope


def test_test_app_receiver_takes_the_envelope() -> None:
    registered = registry.get("tests.testapp.handlers.record_order_placed")

    assert registered is not None
    assert registered.takes_envelope is True
    assert registered.is_async is False


def test_receiver_value_is_frozen(receiver_registry: Registry) -> None:
    receiver("unit_receivers.a")(module_level_handler)

    with pytest.raises(dataclasses.FrozenInstanceError):
        only(receiver_registry).name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("max_attempts", [0, -1, True, 1.5, "3"])
def test_max_attempts_must_be_a_positive_integer(
    receiver_registry: Registry, max_attempts: Any
) -> None:
    decorate = receiver("unit_receivers.a", max_attempts=max_attempts)

    with pytest.raises(ValueError, match=r"max_attempts=.*: give an integer >= 1"):
        decorate(module_level_handler)
    assert names(receiver_registry) == []


@pytest.mark.parametrize(
    "target",
    [42, None, OrderPlaced(order_id=1, total=Decimal(1))],
    ids=["int", "None", "event-instance"],
)
def test_target_must_be_an_event_class_or_type_string(
    receiver_registry: Registry, target: Any
) -> None:
    decorate = receiver(target)

    with pytest.raises(TypeError, match="takes an event class or an event type string"):
        decorate(module_level_handler)
    assert names(receiver_registry) == []


def test_event_type_string_must_not_be_empty(receiver_registry: Registry) -> None:
    with pytest.raises(ValueError, match="the event type must be a non-empty string"):
        receiver("")(module_level_handler)
    assert names(receiver_registry) == []


@pytest.mark.parametrize("name", ["", 5])
def test_name_must_be_a_non_empty_string(receiver_registry: Registry, name: Any) -> None:
    with pytest.raises(ValueError, match=r"name=.*: give a non-empty string"):
        receiver("unit_receivers.a", name=name)(module_level_handler)
    assert names(receiver_registry) == []


# The registry ---------------------------------------------------------------------------------


def test_registering_the_same_function_again_replaces_it(receiver_registry: Registry) -> None:
    receiver("unit_receivers.a", queue="first")(module_level_handler)
    receiver("unit_receivers.a", queue="second")(module_level_handler)

    assert only(receiver_registry).queue == "second"
    assert len(receiver_registry.receivers_for("unit_receivers.a")) == 1


def test_function_of_a_reimported_module_replaces_the_old_one(receiver_registry: Registry) -> None:
    def define() -> Callable[[object], None]:
        # Same module and qualname each time, as when a module is imported a second time.
        def handle(event: object) -> None: ...

        return handle

    old, new = define(), define()
    receiver("unit_receivers.a")(old)
    receiver("unit_receivers.a")(new)

    assert old is not new
    assert only(receiver_registry).func is new


def test_two_functions_with_one_name_are_both_kept(receiver_registry: Registry) -> None:
    @receiver("unit_receivers.a", name="shared")
    def first(event: object) -> None: ...

    @receiver("unit_receivers.a", name="shared")
    def second(event: object) -> None: ...

    # Both stay visible, so the system checks can report the clash (E006) ...
    assert [registered.func for registered in receiver_registry.all()] == [first, second]
    # ... while a name still stands for one receiver: the last registered.
    assert receiver_registry.get("shared").func is second  # type: ignore[union-attr]
    assert [
        registered.func for registered in receiver_registry.receivers_for("unit_receivers.a")
    ] == [second]


def test_one_function_stacked_for_two_events_under_one_name_is_a_duplicate(
    receiver_registry: Registry,
) -> None:
    @receiver("unit_receivers.first")
    @receiver("unit_receivers.second")
    def handle(event: Any) -> None: ...

    claims = receiver_registry._registry[f"{handle.__module__}.{handle.__qualname__}"]

    # Neither registration silently replaces the other: the E006 check reports the pair.
    assert [claim.event_type for claim in claims] == [
        "unit_receivers.second",
        "unit_receivers.first",
    ]


def test_unregister_removes_every_receiver_of_the_name(receiver_registry: Registry) -> None:
    @receiver("unit_receivers.a", name="shared")
    def first(event: object) -> None: ...

    @receiver("unit_receivers.a", name="shared")
    def second(event: object) -> None: ...

    @receiver("unit_receivers.a", name="kept")
    def third(event: object) -> None: ...

    assert len(receiver_registry.receivers_for("unit_receivers.a")) == 2
    receiver_registry.unregister("shared")

    assert names(receiver_registry) == ["kept"]
    assert receiver_registry.get("shared") is None
    assert [
        registered.name for registered in receiver_registry.receivers_for("unit_receivers.a")
    ] == ["kept"]


def test_unregister_of_an_unknown_name_does_nothing(receiver_registry: Registry) -> None:
    receiver("unit_receivers.a", name="kept")(module_level_handler)

    receiver_registry.unregister("never.registered")

    assert names(receiver_registry) == ["kept"]


def test_get_of_an_unknown_name_is_none(receiver_registry: Registry) -> None:
    assert receiver_registry.get("never.registered") is None


def test_receivers_for_keeps_registration_order_per_event_type(receiver_registry: Registry) -> None:
    receiver("unit_receivers.a", name="c")(module_level_handler)
    receiver("unit_receivers.b", name="a")(module_level_handler)
    receiver("unit_receivers.a", name="b")(module_level_handler)

    assert [r.name for r in receiver_registry.receivers_for("unit_receivers.a")] == ["c", "b"]
    assert [r.name for r in receiver_registry.receivers_for("unit_receivers.b")] == ["a"]
    assert receiver_registry.receivers_for("unit_receivers.nobody") == ()


def test_receivers_for_sees_receivers_registered_after_a_lookup(
    receiver_registry: Registry,
) -> None:
    assert receiver_registry.receivers_for("unit_receivers.a") == ()

    receiver("unit_receivers.a", name="late")(module_level_handler)

    assert [r.name for r in receiver_registry.receivers_for("unit_receivers.a")] == ["late"]


def test_restoring_a_snapshot_of_the_state_restores_lookups(receiver_registry: Registry) -> None:
    # Django's autodiscover_modules snapshots ``_registry`` before importing a module and assigns
    # the snapshot back when the import fails.
    receiver("unit_receivers.a", name="before")(module_level_handler)
    snapshot = receiver_registry._registry
    receiver("unit_receivers.a", name="during")(module_level_handler)
    assert len(receiver_registry.receivers_for("unit_receivers.a")) == 2

    receiver_registry._registry = snapshot

    assert [r.name for r in receiver_registry.receivers_for("unit_receivers.a")] == ["before"]
    assert names(receiver_registry) == ["before"]


def test_isolated_gives_an_empty_registry_and_restores_it() -> None:
    before = list(registry.all())
    assert before, "the test app's receivers are registered at start-up"

    with registry.isolated() as isolated:
        assert isolated is registry
        assert list(registry.all()) == []
        assert registry.receivers_for("testapp.OrderPlaced") == ()
        receiver("unit_receivers.a", name="temporary")(module_level_handler)

    assert list(registry.all()) == before
    assert registry.get("temporary") is None
    assert registry.receivers_for("testapp.OrderPlaced") != ()


def test_isolated_restores_after_an_exception() -> None:
    before = list(registry.all())

    def register_then_fail() -> None:
        with registry.isolated():
            receiver("unit_receivers.a", name="temporary")(module_level_handler)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        register_then_fail()

    assert list(registry.all()) == before


def test_isolated_blocks_nest() -> None:
    with registry.isolated():
        receiver("unit_receivers.a", name="outer")(module_level_handler)
        with registry.isolated():
            receiver("unit_receivers.a", name="inner")(module_level_handler)
            assert names(registry) == ["inner"]
        assert names(registry) == ["outer"]


# Autodiscovery --------------------------------------------------------------------------------


@contextmanager
def installed_apps(*app_names: str) -> Iterator[None]:
    """Run a block with only ``app_names`` installed (their AppConfig.ready() runs)."""
    # set_installed_apps() must be balanced by unset_installed_apps() even when it raises.
    try:
        apps.set_installed_apps(app_names)
        yield
    finally:
        apps.unset_installed_apps()


@pytest.fixture
def fresh_good_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next autodiscovery import the good app's modules again, registering anew."""
    for module in ("handlers", "receivers"):
        monkeypatch.delitem(sys.modules, f"{GOOD_APP}.{module}", raising=False)


def test_test_app_handlers_were_discovered_at_start_up() -> None:
    registered = registry.get("tests.testapp.handlers.record_order_placed")

    assert registered is not None
    assert registered.func is testapp_handlers.record_order_placed
    assert registered.event_type == "testapp.OrderPlaced"
    assert registered in registry.receivers_for("testapp.OrderPlaced")


@pytest.mark.usefixtures("fresh_good_app")
def test_autodiscovery_imports_handlers_and_receivers_modules(receiver_registry: Registry) -> None:
    with installed_apps(GOOD_APP, PLAIN_APP):
        autodiscover_modules("handlers", "receivers", register_to=receiver_registry)

    assert names(receiver_registry) == [
        "autodiscover.good.from_handlers",
        "autodiscover.good.from_receivers",
    ]


@pytest.mark.usefixtures("fresh_good_app")
def test_app_config_ready_discovers_receivers(receiver_registry: Registry) -> None:
    with installed_apps("django_domain_events", GOOD_APP, PLAIN_APP):
        pass

    assert names(receiver_registry) == [
        "autodiscover.good.from_handlers",
        "autodiscover.good.from_receivers",
    ]


@pytest.mark.usefixtures("fresh_good_app")
def test_failing_handlers_module_raises_its_error_and_rolls_back(
    receiver_registry: Registry,
) -> None:
    receiver("unit_receivers.a", name="registered.earlier")(module_level_handler)

    with (
        pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"),
        installed_apps(GOOD_APP, BROKEN_APP, PLAIN_APP),
    ):
        autodiscover_modules("handlers", "receivers", register_to=receiver_registry)

    # The broken module registered a receiver before failing; only that import is undone.
    assert names(receiver_registry) == ["registered.earlier", *GOOD_APP_RECEIVERS]
    assert receiver_registry.receivers_for("autodiscover.broken") == ()


@pytest.mark.usefixtures("fresh_good_app")
def test_app_config_ready_does_not_swallow_a_failing_handlers_module(
    receiver_registry: Registry,
) -> None:
    with (
        pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"),
        installed_apps("django_domain_events", GOOD_APP, BROKEN_APP),
    ):
        pass

    assert "autodiscover.broken.registered_before_failure" not in names(receiver_registry)
    assert "autodiscover.good.from_handlers" in names(receiver_registry)
    assert apps.ready
    assert apps.is_installed("tests.testapp")
    assert not apps.is_installed(BROKEN_APP)

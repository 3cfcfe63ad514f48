"""Namespaces of receivers, the ``Emitter`` bound to one, their receiver limit checked when a
receiver is declared, and their debug switches; with the emitter design's own examples."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import pytest
from django.test import override_settings

from django_domain_events import (
    Dispatcher,
    Emitter,
    NamedEvent,
    Namespace,
    OwedDelivery,
    ReceiverLimitError,
    handles,
    publish,
    receiver,
    receiver_class,
)
from django_domain_events.checks import check_receiver_limit
from django_domain_events.declaration import namespaces
from django_domain_events.declaration.registry import Registry
from django_domain_events.delivery.runner import run_delivery
from django_domain_events.models import Delivery, OnceReceiverClaim
from django_domain_events.operations.redelivery import replay_selected
from django_domain_events.operations.selection import EventSelection
from django_domain_events.testing import drain

transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _forget_namespaces() -> Iterator[None]:
    saved = dict(namespaces._namespaces)
    try:
        yield
    finally:
        namespaces._namespaces.clear()
        namespaces._namespaces.update(saved)


def receivers_of(name: str) -> list[str]:
    return sorted(
        Delivery.objects.filter(event__event_type=name).values_list("receiver", flat=True)
    )


# Namespaces and emitters --------------------------------------------------------------------------


@transactional
def test_an_emitter_delivers_to_its_namespace_only_and_publish_to_the_default_one(
    receiver_registry: Registry,
) -> None:
    users = Namespace("unit_users")
    got: list[tuple[str, object]] = []
    users.receiver("unit_ns.password_reset", name="unit.ns.users")(
        lambda e: got.append(("users", e))
    )
    receiver("unit_ns.password_reset", name="unit.ns.default")(lambda e: got.append(("default", e)))

    Emitter(users).publish("unit_ns.password_reset", {"email": "a@example.com"})
    assert got == [("users", NamedEvent("unit_ns.password_reset", {"email": "a@example.com"}))]
    assert receivers_of("unit_ns.password_reset") == ["unit.ns.users"]

    got.clear()
    publish("unit_ns.password_reset", {"email": "b@example.com"})
    Emitter().publish("unit_ns.password_reset", {"email": "c@example.com"})
    assert [who for who, _ in got] == ["default", "default"]


@transactional
def test_namespaced_deliveries_run_again_through_the_relay_path(
    receiver_registry: Registry,
) -> None:
    users = Namespace("unit_users")
    got: list[object] = []
    users.receiver("unit_ns.signed_up", name="unit.ns.deferred", dispatcher="deferred")(got.append)

    Emitter(users).publish_many([NamedEvent("unit_ns.signed_up", {"n": 1})])
    assert got == []
    drain()

    assert got == [NamedEvent("unit_ns.signed_up", {"n": 1})]


@pytest.mark.django_db
def test_a_replay_reaches_a_namespaced_receiver_named_explicitly(
    receiver_registry: Registry,
) -> None:
    users = Namespace("unit_users")
    users.receiver("unit_ns.a", name="unit.ns.users", dispatcher="deferred")(print)
    receiver("unit_ns.a", name="unit.ns.default", dispatcher="deferred")(print)
    event_id = Emitter(users).publish("unit_ns.a", {})
    Delivery.objects.all().delete()

    unnamed = replay_selected(EventSelection(ids=(event_id,)), dry_run=True)
    named = replay_selected(EventSelection(ids=(event_id,)), receivers=["unit.ns.users"])

    assert unnamed.events[0].receivers == ("unit.ns.default",)
    assert named.events[0].receivers == ("unit.ns.users",)
    assert list(Delivery.objects.values_list("receiver", flat=True)) == ["unit.ns.users"]


def test_namespaces_have_their_own_wildcards(receiver_registry: Registry) -> None:
    users = Namespace("unit_users")
    users.receiver("*", name="unit.ns.users_all")(print)
    receiver("*", name="unit.ns.default_all")(print)

    assert [r.name for r in users.receivers_for("unit_ns.x")] == ["unit.ns.users_all"]
    assert [r.name for r in receiver_registry.receivers_for("unit_ns.x")] == ["unit.ns.default_all"]


def test_receiver_names_are_unique_across_namespaces(receiver_registry: Registry) -> None:
    Namespace("unit_users").receiver("unit_ns.a", name="unit.ns.same")(print)
    receiver("unit_ns.a", name="unit.ns.same")(repr)

    assert len(receiver_registry._registry["unit.ns.same"]) == 2  # reported by E006


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": ""}, "give a non-empty string"),
        ({"name": "default"}, "is the namespace of @receiver"),
        ({"name": "u", "max_receivers_per_event": 0}, "give None or an integer >= 1"),
        ({"name": "u", "debug": "yes"}, "give True, False or None"),
    ],
)
def test_bad_namespace_arguments_raise_at_once(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Namespace(**arguments)  # type: ignore[arg-type]


def test_an_emitter_takes_a_namespace_object() -> None:
    with pytest.raises(TypeError, match=r"give a Namespace, e.g. Emitter\(Namespace\('users'\)\)"):
        Emitter("users")  # type: ignore[arg-type]


# The limit, at declaration ------------------------------------------------------------------------


def test_a_namespace_refuses_a_receiver_past_its_limit_naming_namespace_limit_and_setting(
    receiver_registry: Registry,
) -> None:
    users = Namespace("unit_users", max_receivers_per_event=2)
    users.receiver("unit_ns.a", name="unit.ns.one")(print)
    users.receiver("unit_ns.*", name="unit.ns.two")(print)
    receiver("unit_ns.a", name="unit.ns.default")(print)  # another namespace: not counted

    with pytest.raises(ReceiverLimitError) as raised:
        users.receiver("unit_ns.a", name="unit.ns.three")(print)

    assert str(raised.value) == (
        "Receiver 'unit.ns.three' would be receiver number 3 of 'unit_ns.a' in namespace "
        "'unit_users', whose limit is 2 (Namespace('unit_users').max_receivers_per_event); "
        "already registered: unit.ns.one, unit.ns.two. Merge receivers that belong together "
        "(a @receiver_class groups them), or raise Namespace('unit_users').max_receivers_per_event."
    )
    assert receiver_registry.get("unit.ns.three") is None


def test_a_wildcard_past_the_limit_of_a_type_it_matches_is_refused(
    receiver_registry: Registry,
) -> None:
    users = Namespace("unit_users", max_receivers_per_event=1)
    users.receiver("unit_ns.a", name="unit.ns.one")(print)

    with pytest.raises(ReceiverLimitError, match=r"receiver number 2 of 'unit_ns\.a'"):
        users.receiver("unit_ns.*", name="unit.ns.all")(print)


def test_the_default_namespace_enforces_the_setting_when_receivers_are_declared(
    receiver_registry: Registry,
) -> None:
    with override_settings(DOMAIN_EVENTS={"MAX_RECEIVERS_PER_EVENT": 1}):
        receiver("unit_ns.a", name="unit.ns.one")(print)
        with pytest.raises(ReceiverLimitError, match=r"in namespace 'default', whose limit is 1 "):
            receiver("unit_ns.a", name="unit.ns.two")(print)
        with pytest.raises(ReceiverLimitError, match=r"DOMAIN_EVENTS\['MAX_RECEIVERS_PER_EVENT'\]"):

            @receiver_class
            class Grouped:
                @handles("unit_ns.a", name="unit.ns.three")
                def on_a(self, event: object) -> None: ...

        # The same function declared again (a module imported twice) replaces itself.
        receiver("unit_ns.a", name="unit.ns.one")(print)

    assert [r.name for r in receiver_registry.all()] == ["unit.ns.one"]


def test_the_start_up_check_uses_each_namespaces_limit(receiver_registry: Registry) -> None:
    users = Namespace("unit_users")
    users.receiver("unit_ns.a", name="unit.ns.one")(print)
    users.receiver("unit_ns.a", name="unit.ns.two")(print)
    Namespace("unit_users", max_receivers_per_event=1)  # declared again, tighter

    [error] = check_receiver_limit()

    assert error.msg == (
        "Event type 'unit_ns.a' has 2 receivers in namespace 'unit_users', more than "
        "Namespace('unit_users').max_receivers_per_event = 1: unit.ns.one, unit.ns.two."
    )


# Debug switches -----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "namespace_debug", "emitter_debug", "logged"),
    [
        (False, None, None, False),
        (True, None, None, True),
        (False, True, None, True),
        (True, False, None, False),
        (False, False, True, True),
        (True, True, False, False),
    ],
)
def test_debug_output_is_switched_by_the_emitter_then_its_namespace_then_the_setting(
    receiver_registry: Registry,
    caplog: pytest.LogCaptureFixture,
    setting: bool,
    namespace_debug: bool | None,
    emitter_debug: bool | None,
    logged: bool,
) -> None:
    users = Namespace("unit_users", debug=namespace_debug)
    users.receiver("unit_ns.a", name="unit.ns.one", dispatcher="deferred")(print)
    emitter = Emitter(users, debug=emitter_debug)
    caplog.set_level(logging.DEBUG, logger="django_domain_events")

    with override_settings(DOMAIN_EVENTS={"DEBUG": setting}):
        event_id = emitter.publish("unit_ns.a", {})

    published = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Published")]
    assert bool(published) is logged
    if logged:
        assert str(event_id) in published[0]
        assert "unit.ns.one via deferred" in published[0]


class BackgroundTasksDispatcher(Dispatcher):
    """The custom emitter example's ``_process()``: hand each delivery to a web framework's
    background tasks, run after the response is sent."""

    background_tasks: ClassVar[list[Callable[[], object]]] = []

    def dispatch(self, deliveries: Sequence[OwedDelivery]) -> None:
        for owed in deliveries:
            self.background_tasks.append(lambda owed=owed: run_delivery(owed))


# The emitter design's own examples ----------------------------------------------------------------


@transactional
def test_custom_event_linker_example(receiver_registry: Registry) -> None:
    """``UserEventLinker(EventLinker, max_event_handlers=10)`` with a ``once`` handler in it and
    one in the base linker; emitting through an emitter bound to the user linker triggers (and
    removes) only the user one."""
    calls: list[str] = []
    user_event_linker = Namespace("unit_user_events", max_receivers_per_event=10)

    @user_event_linker.receiver("PasswordResetEvent", once=True, name="unit.ns.users_reset")
    async def handle_users_password_reset_event(event: NamedEvent) -> None:
        calls.append(f"User's PasswordResetEvent received! {event.payload['email']}")

    @receiver("PasswordResetEvent", once=True, name="unit.ns.any_reset")
    async def handle_any_password_reset_event(event: NamedEvent) -> None:
        calls.append("Any PasswordResetEvent received!")

    event_emitter = Emitter(user_event_linker)
    event_emitter.publish("PasswordResetEvent", {"email": "example@email.com"})
    event_emitter.publish("PasswordResetEvent", {"email": "again@email.com"})

    assert calls == ["User's PasswordResetEvent received! example@email.com"]
    assert list(OnceReceiverClaim.objects.values_list("receiver", flat=True)) == [
        "unit.ns.users_reset"
    ]


@transactional
def test_runtime_flexibility_example(receiver_registry: Registry) -> None:
    """Code that takes an emitter as a dependency works with whichever it is handed."""
    greeted: list[str] = []

    @receiver("GreetEvent", name="unit.ns.greet")
    def handle_greet_event(event: NamedEvent) -> None:
        greeted.append(f"Hello, {event.payload.get('name', 'World')}!")

    def main(event_emitter: Emitter) -> None:
        event_emitter.publish("GreetEvent", {"name": f"debug={event_emitter.debug}"})

    main(event_emitter=Emitter())
    main(event_emitter=Emitter(debug=True))

    assert greeted == ["Hello, debug=None!", "Hello, debug=True!"]


def test_one_function_in_two_namespaces_under_one_name_is_a_duplicate_not_a_replacement(
    receiver_registry: Registry,
) -> None:
    def audit(event: object) -> None: ...

    Namespace("unit_users").receiver("unit_ns.a")(audit)
    receiver("unit_ns.a")(audit)

    [claims] = receiver_registry._registry.values()
    assert [claim.namespace for claim in claims] == ["unit_users", "default"]


@transactional
def test_custom_event_emitter_example(receiver_registry: Registry) -> None:
    """A ``FastAPIEventEmitter`` whose ``_process()`` adds the emission to the request's
    background tasks: here a dispatcher does that, and the tasks run after the response."""
    printed: list[str] = []
    BackgroundTasksDispatcher.background_tasks = []

    @receiver(
        "ConsolePrintEvent",
        name="unit.ns.console_print",
        dispatcher="tests.unit.test_namespaces.BackgroundTasksDispatcher",
    )
    async def handle_console_print_event(event: NamedEvent) -> None:
        printed.append(event.payload["message"])

    def console_print_endpoint() -> dict[str, str]:
        Emitter().publish("ConsolePrintEvent", {"message": "FastAPIEventEmitter"})
        return {"message": "Console print triggered!"}

    assert console_print_endpoint() == {"message": "Console print triggered!"}
    assert printed == []
    for task in BackgroundTasksDispatcher.background_tasks:
        task()

    assert printed == ["FastAPIEventEmitter"]
    assert Delivery.objects.get().state == "delivered"

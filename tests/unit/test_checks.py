"""System checks: each id is reported by its check, with a hint, and the test project is clean."""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection, connections
from django.test import override_settings

from django_domain_events import DomainEvent, Envelope, receiver
from django_domain_events.checks import check_event_classes, check_receivers, check_settings
from django_domain_events.conf import DEFAULTS
from django_domain_events.declaration.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


def with_id(messages: Sequence[CheckMessage], check_id: str) -> list[CheckMessage]:
    """The messages of one id, each checked to be an error with a hint that says what to do."""
    found = [message for message in messages if message.id == f"django_domain_events.{check_id}"]
    for message in found:
        assert isinstance(message, Error)
        assert message.hint, f"{message.id} has no hint"
    return found


def about(messages: Sequence[CheckMessage], text: str) -> list[CheckMessage]:
    """The messages that mention ``text`` (this test's own event type or receiver name)."""
    return [message for message in messages if text in message.msg]


# Settings: E001, E002, E003 -------------------------------------------------------------------


def test_test_project_settings_pass() -> None:
    assert check_settings() == []


def test_missing_domain_events_setting_passes() -> None:
    with override_settings():
        del django_settings.DOMAIN_EVENTS
        assert check_settings() == []


@override_settings(DOMAIN_EVENTS={"DISPATCHERR": "sync"})
def test_e001_unknown_key_with_did_you_mean() -> None:
    errors = check_settings()

    [error] = with_id(errors, "E001")
    assert error.msg == "DOMAIN_EVENTS has an unknown key 'DISPATCHERR'."
    assert error.hint is not None
    assert error.hint.startswith("Did you mean 'DISPATCHER'? ")
    assert f"Known keys: {', '.join(sorted(DEFAULTS))}." in error.hint
    assert len(errors) == 1


@override_settings(DOMAIN_EVENTS={"COLOUR": "blue"})
def test_e001_unknown_key_without_a_close_match_lists_the_known_keys() -> None:
    [error] = with_id(check_settings(), "E001")

    assert error.hint is not None
    assert "Did you mean" not in error.hint
    assert error.hint == f"Known keys: {', '.join(sorted(DEFAULTS))}."


@override_settings(DOMAIN_EVENTS=[("DISPATCHER", "sync")])
def test_e002_domain_events_not_a_dict() -> None:
    [error] = with_id(check_settings(), "E002")

    assert error.msg == "DOMAIN_EVENTS must be a dict, got list."


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_ATTEMPTS", 0),
        ("MAX_ATTEMPTS", "5"),
        ("MAX_ATTEMPTS", True),
        ("MAX_ATTEMPTS", None),
        ("RETRY_BASE_DELAY", -1),
        ("RETRY_MAX_DELAY", -0.5),
        ("MAX_PAYLOAD_BYTES", 0),
        ("MAX_PAYLOAD_BYTES", "256k"),
    ],
)
def test_e002_bad_setting_value(key: str, value: object) -> None:
    with override_settings(DOMAIN_EVENTS={key: value}):
        errors = check_settings()

    [error] = with_id(errors, "E002")
    assert error.msg.startswith(f"DOMAIN_EVENTS[{key!r}] is {value!r}; it must be ")
    assert error.hint is not None
    assert error.hint.startswith("The default is ")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        # conf reads these keys with int(): int(inf) raises OverflowError and int(nan)
        # ValueError, so every publish() (MAX_PAYLOAD_BYTES) or every retry decision
        # (MAX_ATTEMPTS) would fail at run time instead of at start-up.
        ("MAX_PAYLOAD_BYTES", math.inf),
        ("MAX_ATTEMPTS", math.inf),
        ("MAX_ATTEMPTS", math.nan),
    ],
)
def test_e002_values_the_app_cannot_use_are_reported(key: str, value: float) -> None:
    with override_settings(DOMAIN_EVENTS={key: value}):
        errors = check_settings()

    assert len(with_id(errors, "E002")) == 1


@override_settings(
    DOMAIN_EVENTS={
        "DISPATCHER": "deferred",
        "MAX_ATTEMPTS": 1,
        "RETRY_BASE_DELAY": 0,
        "RETRY_MAX_DELAY": 0.5,
        "MAX_PAYLOAD_BYTES": 1,
    }
)
def test_every_key_at_its_smallest_valid_value_passes() -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("dispatcher", "problem"),
    [
        ("nope", "Unknown dispatcher 'nope'"),
        ("no_such_module.Dispatcher", "cannot be imported"),
        ("decimal.Decimal", "not a subclass of django_domain_events.dispatchers.Dispatcher"),
        (42, "is 42; it must be a string"),
    ],
)
def test_e003_unknown_default_dispatcher(dispatcher: object, problem: str) -> None:
    with override_settings(DOMAIN_EVENTS={"DISPATCHER": dispatcher}):
        errors = check_settings()

    [error] = with_id(errors, "E003")
    assert error.msg.startswith('DOMAIN_EVENTS["DISPATCHER"]')
    assert problem in error.msg
    assert error.hint is not None
    assert "deferred, sync" in error.hint


@override_settings(
    DOMAIN_EVENTS={"DISPATCHER": "django_domain_events.dispatchers.sync.SyncDispatcher"}
)
def test_dispatcher_given_as_a_dotted_path_passes() -> None:
    assert check_settings() == []


def test_e003_unknown_receiver_dispatcher(receiver_registry: Registry) -> None:
    @receiver("unit_checks.e003", dispatcher="carrier-pigeon", name="unit_checks.e003")
    def handle(event: object) -> None: ...

    [error] = with_id(check_receivers(), "E003")

    assert error.msg.startswith("Receiver 'unit_checks.e003' dispatcher: ")
    assert "'carrier-pigeon'" in error.msg


def test_known_receiver_dispatcher_passes(receiver_registry: Registry) -> None:
    @receiver("unit_checks.known", dispatcher="deferred")
    def handle(event: object) -> None: ...

    assert check_receivers() == []


# Event classes: E004, E005 --------------------------------------------------------------------


@pytest.mark.usefixtures("disposable_classes")
def test_e004_two_classes_with_one_event_type() -> None:
    @dataclass(frozen=True)
    class First(DomainEvent):
        event_type = "unit_checks.duplicated"

    @dataclass(frozen=True)
    class Second(DomainEvent):
        event_type = "unit_checks.duplicated"

    [error] = about(with_id(check_event_classes(), "E004"), "'unit_checks.duplicated'")

    assert "is claimed by 2 classes" in error.msg
    assert f"{__name__}.{First.__qualname__}" in error.msg
    assert f"{__name__}.{Second.__qualname__}" in error.msg


@pytest.mark.usefixtures("disposable_classes")
def test_one_class_per_event_type_is_not_e004() -> None:
    @dataclass(frozen=True)
    class Alone(DomainEvent):
        event_type = "unit_checks.alone"

    assert about(with_id(check_event_classes(), "E004"), "'unit_checks.alone'") == []


@pytest.mark.usefixtures("disposable_classes")
def test_abstract_base_and_its_subclass_are_not_e004() -> None:
    @dataclass(frozen=True)
    class Base(DomainEvent, abstract=True):
        event_type = "unit_checks.base_and_child"

    @dataclass(frozen=True)
    class Child(Base):
        event_type = "unit_checks.base_and_child"

    assert about(with_id(check_event_classes(), "E004"), "'unit_checks.base_and_child'") == []


@pytest.mark.usefixtures("disposable_classes")
def test_e005_unsupported_field_type() -> None:
    @dataclass(frozen=True)
    class WithSet(DomainEvent):
        event_type = "unit_checks.with_set"

        ids: set[int]

    errors = [error for error in with_id(check_event_classes(), "E005") if error.obj is WithSet]

    [error] = errors
    assert "WithSet.ids: field type set cannot round-trip through JSON." in error.msg


@pytest.mark.usefixtures("disposable_classes")
def test_e005_event_class_not_a_dataclass() -> None:
    class Plain(DomainEvent):
        event_type = "unit_checks.plain"

    errors = [error for error in with_id(check_event_classes(), "E005") if error.obj is Plain]

    [error] = errors
    assert "Plain must be a dataclass" in error.msg


@pytest.mark.usefixtures("disposable_classes")
def test_supported_event_class_is_not_e005() -> None:
    @dataclass(frozen=True)
    class Fine(DomainEvent):
        event_type = "unit_checks.fine"

        total: Decimal

    assert [error for error in check_event_classes() if error.obj is Fine] == []


# Receivers: E006, E007, E008, E009 ------------------------------------------------------------


def test_e006_two_functions_with_one_receiver_name(receiver_registry: Registry) -> None:
    @receiver("unit_checks.e006", name="unit_checks.shared_name")
    def first(event: object) -> None: ...

    @receiver("unit_checks.e006", name="unit_checks.shared_name")
    def second(event: object) -> None: ...

    [error] = with_id(check_receivers(), "E006")

    assert error.msg.startswith("Receiver name 'unit_checks.shared_name' is used by 2 functions")
    assert f"{__name__}.{first.__qualname__}" in error.msg
    assert f"{__name__}.{second.__qualname__}" in error.msg


def test_e007_receiver_of_a_class_that_is_not_a_domain_event(receiver_registry: Registry) -> None:
    @dataclass(frozen=True)
    class NotAnEvent:
        order_id: int

    @receiver(NotAnEvent, name="unit_checks.e007")
    def handle(event: NotAnEvent) -> None: ...

    [error] = with_id(check_receivers(), "E007")

    assert error.msg == (
        f"Receiver 'unit_checks.e007' listens to {NotAnEvent.__qualname__}, which is not a "
        f"DomainEvent subclass."
    )
    assert error.obj == f"{handle.__module__}.{handle.__qualname__}"


def test_e008_receiver_that_is_not_callable(receiver_registry: Registry) -> None:
    receiver("unit_checks.e008", name="unit_checks.e008")(42)

    errors = check_receivers()

    [error] = with_id(errors, "E008")
    assert error.msg == "Receiver 'unit_checks.e008' is 42, which is not callable."
    assert with_id(errors, "E009") == []


def _no_parameters() -> None: ...


def _two_required(event: object, other: object) -> None: ...


def _keyword_only_event(*, event: object) -> None: ...


def _envelope_only(envelope: Envelope) -> None: ...


def _envelope_and_more(event: object, envelope: Envelope, extra: object) -> None: ...


async def _async_no_parameters() -> None: ...


@pytest.mark.parametrize(
    "func",
    [
        _no_parameters,
        _two_required,
        _keyword_only_event,
        _envelope_only,
        _envelope_and_more,
        _async_no_parameters,
    ],
    ids=lambda func: func.__name__,
)
def test_e009_signature_that_cannot_take_the_event(
    receiver_registry: Registry, func: Callable[..., Any]
) -> None:
    receiver("unit_checks.e009", name="unit_checks.e009")(func)

    [error] = with_id(check_receivers(), "E009")

    assert error.msg == (
        "Receiver 'unit_checks.e009' cannot be called with the event as its only positional "
        "argument."
    )
    assert error.obj == f"{func.__module__}.{func.__qualname__}"


def _event(event: object) -> None: ...


def _event_and_envelope(event: object, envelope: Envelope) -> None: ...


def _keyword_envelope(event: object, *, envelope: Envelope) -> None: ...


def _defaults(event: object, extra: int = 1) -> None: ...


def _anything(*args: object, **kwargs: object) -> None: ...


async def _async_event(event: object, envelope: Envelope) -> None: ...


class _CallableObject:
    def __call__(self, event: object) -> None: ...


@pytest.mark.parametrize(
    "func",
    [
        _event,
        _event_and_envelope,
        _keyword_envelope,
        _defaults,
        _anything,
        _async_event,
        _CallableObject(),
        functools.partial(_two_required, other=None),
        lambda event: None,
        print,
    ],
    ids=[
        "event",
        "event-and-envelope",
        "keyword-envelope",
        "extra-with-default",
        "args-kwargs",
        "async",
        "callable-object",
        "partial",
        "lambda",
        "builtin",
    ],
)
def test_signatures_that_take_the_event_pass(
    receiver_registry: Registry, func: Callable[..., Any]
) -> None:
    receiver("unit_checks.fine", name="unit_checks.fine")(func)

    assert check_receivers() == []


# Wiring into Django ---------------------------------------------------------------------------


@override_settings(DOMAIN_EVENTS={"DISPATCHERR": "sync"})
@pytest.mark.django_db(databases="__all__")  # Django 6 asks each database about JSON support
def test_checks_are_registered_with_django() -> None:
    with pytest.raises(SystemCheckError, match=r"django_domain_events\.E001"):
        call_command("check")


@pytest.mark.django_db(databases=["default", "other"])
def test_check_command_passes_for_the_test_project() -> None:
    # In a fresh process: this process holds event classes and receivers that other tests
    # define on purpose, which are not part of the configured project. On MySQL/MariaDB,
    # Django's field checks ask the server its version: the process gets the test databases.
    code = (
        "import django; django.setup(); "
        "from django.core.management import call_command; call_command('check')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    if connection.vendor != "sqlite":
        env["DOMAIN_EVENTS_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
        env["DOMAIN_EVENTS_TEST_DB_OTHER_NAME"] = str(connections["other"].settings_dict["NAME"])
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout

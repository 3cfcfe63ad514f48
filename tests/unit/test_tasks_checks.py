"""The system checks of the ``django.tasks`` dispatcher: on Django 5.2, which has no
``django.tasks``, naming it is an error that says why; its settings are checked everywhere."""

from __future__ import annotations

import importlib.util
from typing import Any

import django
import pytest
from django.test import override_settings

from django_domain_events import receiver
from django_domain_events.checks import check_receivers, check_settings
from django_domain_events.declaration.registry import Registry

HAS_DJANGO_TASKS = django.VERSION >= (6, 0)


@pytest.fixture
def without_django_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """This Django as if it were 5.2: no ``django.tasks`` to find."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "django.tasks" else find_spec(name, *args),
    )


def e020(receiver_registry: Registry) -> list[tuple[str, str, str | None]]:
    receiver("unit_tasks.e020", dispatcher="tasks", name="unit_tasks.e020")(print)
    with override_settings(DOMAIN_EVENTS={"DISPATCHER": "tasks"}):
        errors = [*check_settings(), *check_receivers()]
    return [(error.id or "", error.msg, error.hint) for error in errors]


NEEDS_DJANGO_6 = (
    f"but this Django ({django.get_version()}) has no django.tasks: the django.tasks "
    f"dispatcher needs Django 6.0 or later."
)
HINT = "Upgrade Django, or choose another dispatcher such as 'celery' or 'sync'."


@pytest.mark.skipif(HAS_DJANGO_TASKS, reason="Django 6 has django.tasks")
def test_e020_the_tasks_dispatcher_on_django_5_2(receiver_registry: Registry) -> None:
    assert e020(receiver_registry) == [
        (
            "django_domain_events.E020",
            f"""DOMAIN_EVENTS["DISPATCHER"] is 'tasks', {NEEDS_DJANGO_6}""",
            HINT,
        ),
        (
            "django_domain_events.E020",
            f"Receiver 'unit_tasks.e020' dispatcher is 'tasks', {NEEDS_DJANGO_6}",
            HINT,
        ),
    ]


@pytest.mark.usefixtures("without_django_tasks")
def test_e020_whenever_django_tasks_is_missing(receiver_registry: Registry) -> None:
    assert [error_id for error_id, _, _ in e020(receiver_registry)] == [
        "django_domain_events.E020",
        "django_domain_events.E020",
    ]


@pytest.mark.skipif(not HAS_DJANGO_TASKS, reason="the django.tasks dispatcher needs Django 6")
def test_the_tasks_dispatcher_passes_the_checks_on_django_6(receiver_registry: Registry) -> None:
    assert e020(receiver_registry) == []


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"TASKS_BACKEND": ""}, "DOMAIN_EVENTS['TASKS_BACKEND'] is ''"),
        ({"TASKS_BACKEND": None}, "DOMAIN_EVENTS['TASKS_BACKEND'] is None"),
        ({"TASKS_QUEUE": 3}, "DOMAIN_EVENTS['TASKS_QUEUE'] is 3"),
        ({"TASKS_PRIORITY": 101}, "DOMAIN_EVENTS['TASKS_PRIORITY'] is 101"),
        ({"TASKS_PRIORITY": True}, "DOMAIN_EVENTS['TASKS_PRIORITY'] is True"),
        ({"TASKS_PRIORITIES": {"a.b": -101}}, "DOMAIN_EVENTS[\"TASKS_PRIORITIES['a.b']\"] is -101"),
        ({"TASKS_PRIORITIES": ["a.b"]}, "DOMAIN_EVENTS['TASKS_PRIORITIES'] is ['a.b']"),
    ],
)
def test_e002_tasks_settings_of_the_wrong_kind(settings: dict[str, Any], problem: str) -> None:
    with override_settings(DOMAIN_EVENTS=settings):
        errors = check_settings()

    assert [(error.id, error.msg.startswith(problem)) for error in errors] == [
        ("django_domain_events.E002", True)
    ]


@pytest.mark.skipif(not HAS_DJANGO_TASKS, reason="settings.TASKS is Django 6's")
def test_e002_a_tasks_backend_that_settings_tasks_does_not_configure() -> None:
    with override_settings(DOMAIN_EVENTS={"TASKS_BACKEND": "elsewhere"}):
        [error] = check_settings()

    assert error.id == "django_domain_events.E002"
    assert error.msg == (
        "DOMAIN_EVENTS['TASKS_BACKEND'] is 'elsewhere', which settings.TASKS does not configure."
    )
    assert error.hint is not None
    assert error.hint.startswith("Name one of ")
    assert "default, dummy" in error.hint


def test_tasks_settings_within_their_ranges_pass() -> None:
    settings = {
        "TASKS_BACKEND": "dummy",
        "TASKS_QUEUE": "events",
        "TASKS_PRIORITY": -100,
        "TASKS_PRIORITIES": {"crm.push": 100},
    }
    with override_settings(DOMAIN_EVENTS=settings):
        assert check_settings() == []

"""Users, receivers and rows shared by the admin tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_domain_events import GiveUp, receiver
from django_domain_events.declaration.registry import Registry

HOSTILE = "<script>alert('x')</script>"

PINGED = "unit_admin.pinged"


@dataclass
class Switches:
    """What the test receivers do: ``failing`` ones raise, and every run is recorded."""

    failing: set[str] = field(default_factory=set)
    runs: list[tuple[str, Any]] = field(default_factory=list)


@pytest.fixture
def switches(receiver_registry: Registry) -> Switches:
    """Three receivers of ``unit_admin.pinged`` in the test's registry: ``unit_admin.ok``,
    ``unit_admin.flaky`` (fails, retried later, while named in ``failing``) and
    ``unit_admin.fragile`` (gives up at once while named in ``failing``)."""
    state = Switches(failing={"unit_admin.flaky", "unit_admin.fragile"})

    @receiver(PINGED, name="unit_admin.ok")
    def ok(event: Any) -> None:
        state.runs.append(("unit_admin.ok", event.payload))

    @receiver(PINGED, name="unit_admin.flaky")
    def flaky(event: Any) -> None:
        state.runs.append(("unit_admin.flaky", event.payload))
        if "unit_admin.flaky" in state.failing:
            raise ValueError(HOSTILE)

    @receiver(PINGED, name="unit_admin.fragile")
    def fragile(event: Any) -> None:
        state.runs.append(("unit_admin.fragile", event.payload))
        if "unit_admin.fragile" in state.failing:
            raise GiveUp(HOSTILE)

    return state


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client() -> Client:
    """A client signed in as a superuser."""
    return login(User.objects.create_superuser("root", "root@example.com", "pw"))


def staff_with(*codenames: str, username: str = "staff") -> User:
    """A staff user holding exactly the named permissions of the outbox models."""
    user = User.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_domain_events", codename__in=codenames
        )
    )
    return user


@pytest.fixture
def viewer_client() -> Client:
    """A client signed in as staff who may view the outbox and nothing else."""
    return login(staff_with("view_outboxevent", "view_delivery"))

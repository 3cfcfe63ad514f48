"""What this project consumes: ``DOMAIN_EVENTS["CONSUME"]`` read into a ``Subscription``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_domain_events.conf import settings
from django_domain_events.transports.base import Destination

SETTING = "DOMAIN_EVENTS['CONSUME']"
EXAMPLE = (
    '{"TRANSPORT": "default", "QUEUE": "billing", '
    '"DESTINATIONS": [{"NAME": "payments", "ROUTING_KEY": "shop.#"}]}'
)
_KEYS = {"TRANSPORT", "QUEUE", "DESTINATIONS"}


@dataclass(frozen=True)
class Subscription:
    """The queue ``consume_events`` reads, on which transport, bound to which destinations."""

    transport: str
    queue: str
    destinations: tuple[Destination, ...]


def subscription_problem(configured: Any) -> str | None:
    """What is wrong with a ``CONSUME`` value, or None if it can be used."""
    if not isinstance(configured, dict):
        return f"{SETTING} must be a dict, got {type(configured).__name__}"
    unknown = sorted(str(key) for key in configured if key not in _KEYS)
    if unknown:
        return (
            f"{SETTING} has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})"
        )
    for key in ("TRANSPORT", "QUEUE"):
        value = configured.get(key, "default" if key == "TRANSPORT" else None)
        if not isinstance(value, str) or not value:
            return f"{SETTING}[{key!r}] must be a non-empty string, got {value!r}"
    destinations = configured.get("DESTINATIONS")
    if not isinstance(destinations, list | tuple) or not destinations:
        return f"{SETTING}['DESTINATIONS'] must be a non-empty list, got {destinations!r}"
    for number, entry in enumerate(destinations):
        if not isinstance(entry, dict) or set(entry) - {"NAME", "ROUTING_KEY"}:
            return (
                f"{SETTING}['DESTINATIONS'][{number}] must be a dict with NAME and ROUTING_KEY, "
                f"got {entry!r}"
            )
        for key in ("NAME", "ROUTING_KEY"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                return (
                    f"{SETTING}['DESTINATIONS'][{number}][{key!r}] must be a non-empty string, "
                    f"got {entry.get(key)!r}"
                )
    return None


def configured_subscription(
    *, transport: str | None = None, queue: str | None = None
) -> Subscription:
    """The project's ``CONSUME`` setting as a ``Subscription``, with ``transport`` or ``queue``
    overriding its own. Raises ``ImproperlyConfigured`` naming the problem."""
    configured = settings.CONSUME
    if configured is None:
        raise ImproperlyConfigured(
            f"{SETTING} is not set, so there is nothing to consume. Set it, such as {EXAMPLE}."
        )
    problem = subscription_problem(configured)
    if problem is not None:
        raise ImproperlyConfigured(f"{problem}. Write it like {EXAMPLE}.")
    return Subscription(
        transport=transport or configured.get("TRANSPORT", "default"),
        queue=queue or configured["QUEUE"],
        destinations=tuple(
            Destination(name=entry["NAME"], routing_key=entry["ROUTING_KEY"])
            for entry in configured["DESTINATIONS"]
        ),
    )

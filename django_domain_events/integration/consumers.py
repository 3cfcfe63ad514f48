"""``@consumer``: declare a receiver of messages consumed from a broker by ``consume_events``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django_domain_events.declaration.events import DomainEvent
from django_domain_events.declaration.receivers import make_receiver, register
from django_domain_events.declaration.registry import Receiver, registry

F = TypeVar("F", bound=Callable[..., Any])

CONSUMER_NAMESPACE = "consumed"
"""The namespace of ``@consumer`` receivers: ``publish()`` never delivers to them, only
``consume_events`` does."""


def consumer(
    event: type[DomainEvent] | str,
    *,
    name: str | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as a receiver of the messages of ``event`` that
    ``consume_events`` takes from the broker.

    ``event`` is an event class of this project (usually an ``IntegrationEvent`` whose
    ``event_type`` is the type the producer sends) or a type string, whose receivers get a
    ``NamedEvent``. It runs in the transaction that records the message in the inbox, so a
    message's effects commit once. ``max_attempts`` (None: ``DOMAIN_EVENTS["MAX_ATTEMPTS"]``)
    bounds how often a failing message goes back to the broker before it is dead; ``name``
    overrides the stable default ``"module.qualname"``, the key of its inbox rows.
    """

    def decorate(func: F) -> F:
        register(
            make_receiver(
                event,
                func,
                name=name,
                max_attempts=max_attempts,
                timeout=timeout,
                namespace=CONSUMER_NAMESPACE,
            )
        )
        return func

    return decorate


def consumers_for(event_type: str) -> tuple[Receiver, ...]:
    """The ``@consumer`` receivers of ``event_type``, wildcards included."""
    return registry.receivers_for(event_type, CONSUMER_NAMESPACE)


def all_consumers() -> list[Receiver]:
    """Every registered ``@consumer`` receiver."""
    return [found for found in registry.all() if found.namespace == CONSUMER_NAMESPACE]

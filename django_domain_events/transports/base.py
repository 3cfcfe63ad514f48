"""The transport contract: send messages to a destination, consume them from a queue."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_domain_events.exceptions import MessageFormatError
from django_domain_events.integration.messages import Message


@dataclass(frozen=True)
class Destination:
    """Where messages go: a named destination (an exchange, a topic), and the routing key."""

    name: str
    routing_key: str


class Received(ABC):
    """One message taken from a queue, to acknowledge or reject."""

    message: Message | None
    error: MessageFormatError | None
    raw_headers: Mapping[str, Any]
    raw_body: bytes
    redelivered: bool

    @abstractmethod
    def ack(self) -> None:
        """Tell the broker the message is done with."""

    @abstractmethod
    def reject(self, requeue: bool) -> None:
        """Give the message back (``requeue``) or drop it to the broker's dead letters."""


class Transport(ABC):
    """A broker connection."""

    name: ClassVar[str]

    @abstractmethod
    def send(self, destination: Destination, messages: Sequence[Message]) -> None:
        """Send ``messages`` to ``destination``, returning once the broker confirmed them."""

    @abstractmethod
    def consume(
        self,
        destinations: Sequence[Destination],
        queue: str,
        handle: Callable[[Received], None],
        stop: threading.Event,
    ) -> None:
        """Hand each message of ``queue`` (bound to ``destinations``) to ``handle`` until
        ``stop`` is set; at-least-once: a message is redelivered unless acked."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""


def transport_for(name: str) -> Transport:
    """The transport ``name`` of ``DOMAIN_EVENTS["TRANSPORTS"]``."""
    configured = (getattr(django_settings, "DOMAIN_EVENTS", None) or {}).get("TRANSPORTS") or {}
    if name not in configured:
        raise ImproperlyConfigured(
            f"DOMAIN_EVENTS['TRANSPORTS'] has no transport {name!r}; declare it there."
        )
    entry = configured[name]
    backend = import_string(entry["BACKEND"])
    made: Transport = backend(url=entry.get("URL", ""), **(entry.get("OPTIONS") or {}))
    return made

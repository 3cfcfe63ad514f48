"""The transport contract: what sends messages to a broker destination and consumes them.

A transport is built from ``DOMAIN_EVENTS["TRANSPORTS"][alias]`` with its ``URL`` and
``OPTIONS``. Subclass ``Transport`` (and ``Received``) and name the class's dotted path as a
``BACKEND`` to add a broker.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django.core.checks import CheckMessage

from django_domain_events.exceptions import MessageFormatError, TransportError
from django_domain_events.integration.messages import Message, Mode


@dataclass(frozen=True)
class Destination:
    """Where messages go on a broker: ``name`` is the exchange (topic, stream, subject) and
    ``routing_key`` what the broker routes them to queues by."""

    name: str
    routing_key: str
    mode: Mode = "structured"
    """How messages sent there are put on the wire (see ``messages.encode``)."""


class Received(abc.ABC):
    """One message as a consumer got it from the broker, to acknowledge or reject."""

    message: Message | None
    """The message read from the wire, or None when it could not be (see ``error``)."""
    error: MessageFormatError | None
    """Why the raw message is no CloudEvents event this app can read, or None."""
    raw_headers: Mapping[str, Any]
    raw_body: bytes
    redelivered: bool
    """Whether the broker delivered it before (to this or another consumer)."""

    @abc.abstractmethod
    def ack(self) -> None:
        """Tell the broker the message is handled: it is not delivered again."""

    @abc.abstractmethod
    def reject(self, requeue: bool) -> None:
        """Give the message back: delivered again if ``requeue``, else dropped (or
        dead-lettered, where the broker is set up to)."""


class Transport(abc.ABC):
    """Base class of transports: one per ``DOMAIN_EVENTS["TRANSPORTS"]`` alias, shared by the
    threads of a process. Connections are the transport's to pool and reuse."""

    name: ClassVar[str]
    """Short name of the broker, for logs and errors (``"rabbitmq"``)."""

    def __init__(self, alias: str, url: str, options: Mapping[str, Any]) -> None:
        self.alias = alias
        self.url = url
        self.options = dict(options)

    def options_over(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """``OPTIONS`` over ``defaults``; a ``TransportError`` names any key ``defaults`` does
        not know."""
        unknown = sorted(set(self.options) - set(defaults))
        if unknown:
            raise TransportError(
                f"Transport {self.alias!r}: unknown OPTIONS {', '.join(unknown)}; known: "
                f"{', '.join(sorted(defaults))}."
            )
        return {**defaults, **self.options}

    @abc.abstractmethod
    def send(self, destination: Destination, messages: Sequence[Message]) -> None:
        """Return only when the broker confirmed every message; raise ``TransportError``
        naming the problem otherwise (unroutable, refused, connection)."""

    @abc.abstractmethod
    def consume(
        self,
        destinations: Sequence[Destination],
        queue: str,
        handle: Callable[[Received], None],
        stop: threading.Event,
    ) -> None:
        """Deliver each message of ``queue`` (bound to every destination) to ``handle()`` until
        ``stop`` is set. At-least-once: a message is delivered again unless its ``Received``
        was acknowledged."""

    def check(self) -> list[CheckMessage]:
        """What ``manage.py check --deploy`` should warn of about the broker itself (it may
        ask the broker); none by default."""
        return []

    @abc.abstractmethod
    def close(self) -> None:
        """Close the transport's connections; it may be used again afterwards (it reconnects)."""

"""The in-memory transport, for tests: it keeps what was sent in a list and confirms at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from django_domain_events.integration.messages import Message
from django_domain_events.transports.base import Destination, Received, Transport


class InMemoryTransport(Transport):
    """Records every message sent as ``(destination, message)`` in ``sent``; ``consume()``
    hands the ones sent to its destinations to ``handle()`` and returns."""

    name: ClassVar[str] = "memory"

    def __init__(self, alias: str, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(alias, url, options)
        self.sent: list[tuple[Destination, Message]] = []
        self._lock = threading.Lock()

    def send(self, destination: Destination, messages: Sequence[Message]) -> None:
        """Record ``messages``: confirmed as soon as they are in the list."""
        with self._lock:
            self.sent.extend((destination, message) for message in messages)

    def consume(
        self,
        destinations: Sequence[Destination],
        queue: str,
        handle: Callable[[Received], None],
        stop: threading.Event,
    ) -> None:
        """Hand each recorded message sent to one of ``destinations`` to ``handle()``, until
        none is left or ``stop`` is set; one acknowledged is taken out of ``sent``."""
        wanted = {(d.name, d.routing_key) for d in destinations}
        with self._lock:
            pending = [
                (destination, message)
                for destination, message in self.sent
                if (destination.name, destination.routing_key) in wanted
            ]
        for sent in pending:
            if stop.is_set():
                return
            handle(_InMemoryReceived(self, sent))

    def close(self) -> None:
        """Nothing to close."""


class _InMemoryReceived(Received):
    def __init__(self, transport: InMemoryTransport, sent: tuple[Destination, Message]) -> None:
        self._transport, self._sent = transport, sent
        self.message, self.error = sent[1], None
        self.raw_headers, self.raw_body = {}, sent[1].data
        self.redelivered = False

    def ack(self) -> None:
        with self._transport._lock:
            if self._sent in self._transport.sent:
                self._transport.sent.remove(self._sent)

    def reject(self, requeue: bool) -> None:
        if not requeue:
            self.ack()

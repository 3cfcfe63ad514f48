"""A real transport for tests, in memory: one queue per consumer queue name, bound to
destinations by topic patterns, with at-least-once delivery (a message neither acked nor
rejected goes back, ``redelivered=True``, when the consumer stops; so does a requeued one)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django_domain_events.exceptions import MessageFormatError
from django_domain_events.integration.messages import Message, from_wire, to_binary
from django_domain_events.transports.base import Destination, Received, Transport


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` is zero or more."""

    def match(words: list[str], parts: list[str]) -> bool:
        if not words:
            return not parts
        if words[0] == "#":
            return any(match(words[1:], parts[skip:]) for skip in range(len(parts) + 1))
        if not parts:
            return False
        return (words[0] == "*" or words[0] == parts[0]) and match(words[1:], parts[1:])

    return match(pattern.split("."), key.split("."))


@dataclass
class _Queued:
    headers: dict[str, Any]
    body: bytes
    redelivered: bool = False


@dataclass
class Broker:
    """The shared state: queues by name, and their bindings."""

    queues: dict[str, deque[_Queued]] = field(default_factory=dict)
    bindings: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    dead_letters: list[_Queued] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def bind(self, queue: str, destinations: Sequence[Destination]) -> None:
        with self.condition:
            self.queues.setdefault(queue, deque())
            self.bindings.setdefault(queue, set()).update(
                (destination.name, destination.routing_key) for destination in destinations
            )

    def put(self, destination: str, routing_key: str, headers: dict[str, Any], body: bytes) -> None:
        with self.condition:
            for queue, bound in self.bindings.items():
                if any(
                    name == destination and topic_matches(pattern, routing_key)
                    for name, pattern in bound
                ):
                    self.queues[queue].append(_Queued(dict(headers), body))
            self.condition.notify_all()

    def waiting(self, queue: str) -> int:
        """Messages in ``queue`` not taken by a consumer."""
        with self.condition:
            return len(self.queues.get(queue, ()))


broker = Broker()
"""The broker every ``InProcessTransport`` shares (reset by the ``in_process_broker`` fixture)."""


class InProcessReceived(Received):
    """A message taken from an in-memory queue."""

    def __init__(self, owner: InProcessTransport, queue: str, queued: _Queued) -> None:
        self._owner = owner
        self._queue = queue
        self._queued = queued
        self.settled = False
        self.raw_headers = queued.headers
        self.raw_body = queued.body
        self.redelivered = queued.redelivered
        try:
            self.message: Message | None = from_wire(queued.headers, queued.body)
            self.error: MessageFormatError | None = None
        except MessageFormatError as exc:
            self.message, self.error = None, exc

    def ack(self) -> None:
        if self._owner.lose_acks > 0:
            # As if the connection dropped before the ack reached the broker.
            self._owner.lose_acks -= 1
            return
        self.settled = True
        self._owner.acked.append(self)

    def reject(self, requeue: bool) -> None:
        self.settled = True
        self._owner.rejected.append(self)
        if requeue:
            self._owner.give_back(self._queue, self._queued)
        else:
            broker.dead_letters.append(self._queued)


class InProcessTransport(Transport):
    """The in-memory transport; ``stop_when_empty`` ends ``consume()`` once its queue is empty
    (as ``--once`` would wish of a real broker), so a test needs no deadline; the first
    ``lose_acks`` acks never reach it, as when a connection drops before them."""

    name: ClassVar[str] = "in_process"

    def __init__(
        self,
        alias: str = "default",
        url: str = "",
        options: Mapping[str, Any] | None = None,
        *,
        stop_when_empty: bool = True,
        lose_acks: int = 0,
    ) -> None:
        super().__init__(alias, url, options or {})
        self.stop_when_empty = stop_when_empty
        self.lose_acks = lose_acks
        self.acked: list[InProcessReceived] = []
        self.rejected: list[InProcessReceived] = []

    def send(self, destination: Destination, messages: Sequence[Message]) -> None:
        for message in messages:
            headers, body = to_binary(message)
            broker.put(destination.name, destination.routing_key, headers, body)

    def send_raw(self, destination: Destination, headers: Mapping[str, Any], body: bytes) -> None:
        """Send bytes that need not be a CloudEvents message at all."""
        broker.put(destination.name, destination.routing_key, dict(headers), body)

    def give_back(self, queue: str, queued: _Queued) -> None:
        with broker.condition:
            queued.redelivered = True
            broker.queues[queue].appendleft(queued)
            broker.condition.notify_all()

    def consume(
        self,
        destinations: Sequence[Destination],
        queue: str,
        handle: Callable[[Received], None],
        stop: threading.Event,
    ) -> None:
        broker.bind(queue, destinations)
        while not stop.is_set():
            with broker.condition:
                waiting = broker.queues[queue]
                if not waiting:
                    if self.stop_when_empty:
                        return
                    broker.condition.wait(0.05)
                    continue
                queued = waiting.popleft()
            received = InProcessReceived(self, queue, queued)
            try:
                handle(received)
            finally:
                if not received.settled:
                    # The consumer let go of it without settling it: the broker gives it again.
                    self.give_back(queue, queued)

    def close(self) -> None:
        pass


def reset() -> None:
    """Empty every queue and binding."""
    global broker
    with broker.condition:
        broker.queues.clear()
        broker.bindings.clear()
        broker.dead_letters.clear()

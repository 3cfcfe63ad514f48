"""The RabbitMQ transport: AMQP topic exchanges through kombu (the only module importing it).

Sending waits for the broker's publisher confirm of every message, persistent
(``delivery_mode=2``) and ``mandatory``: a message no queue is bound for comes back, and is a
``TransportError`` instead of silence. Connections come from a pool owned by the transport and
are reused across sends; a connection that failed is dropped, and the next send opens another.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from kombu.connection import Connection
from kombu.entity import Exchange, Queue, binding
from kombu.exceptions import KombuError, LimitExceeded, OperationalError
from kombu.messaging import Consumer, Producer

from django_domain_events.exceptions import MessageFormatError, TransportError
from django_domain_events.integration.messages import Message, encode, from_wire
from django_domain_events.transports.base import Destination, Received, Transport

logger = logging.getLogger("django_domain_events")

DEFAULT_OPTIONS: dict[str, Any] = {
    # Seconds to wait for the broker to confirm one message.
    "confirm_timeout": 10.0,
    # Seconds one attempt to connect may take; a send tries once, the delivery's retries and
    # the relay do the rest.
    "connect_timeout": 5.0,
    # Connections the pool keeps open at most (threads beyond it wait up to connect_timeout).
    "pool_limit": 10,
    # Messages a consumer holds unacknowledged at once.
    "prefetch_count": 10,
    # Seconds a consumer waits for a message before it looks at its stop event again.
    "poll_interval": 1.0,
    # The exchange type declared for destinations ("topic": routing keys with * and #).
    "exchange_type": "topic",
    # Passed to kombu as transport options (after the publisher confirms this transport sets).
    "transport_options": {},
}
"""The ``OPTIONS`` of a RabbitMQ transport, and their defaults."""

_ERRORS = (OSError, socket.timeout, KombuError, OperationalError)


class RabbitMQTransport(Transport):
    """Sends to and consumes from durable topic exchanges of a RabbitMQ broker (``URL``:
    ``amqp://user:password@host:5672/vhost``)."""

    name: ClassVar[str] = "rabbitmq"

    def __init__(self, alias: str, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(alias, url or "amqp://guest:guest@127.0.0.1:5672//", options)
        settings = self.options_over(DEFAULT_OPTIONS)
        self.confirm_timeout = float(settings["confirm_timeout"])
        self.connect_timeout = float(settings["connect_timeout"])
        self.prefetch_count = int(settings["prefetch_count"])
        self.poll_interval = float(settings["poll_interval"])
        self.exchange_type = str(settings["exchange_type"])
        self._connection = Connection(
            self.url,
            connect_timeout=self.connect_timeout,
            transport_options={
                **dict(settings["transport_options"]),
                "confirm_publish": True,
                "max_retries": 0,
            },
        )
        self._pool = self._connection.Pool(limit=int(settings["pool_limit"]))

    def _exchange(self, name: str) -> Exchange:
        return Exchange(name, type=self.exchange_type, durable=True)

    def send(self, destination: Destination, messages: Sequence[Message]) -> None:
        """Publish ``messages`` to the exchange ``destination.name`` (declared durable if it is
        not there) with ``destination.routing_key``, each confirmed before the next is sent."""
        if not messages:
            return
        try:
            connection = self._pool.acquire(block=True, timeout=self.connect_timeout)
        except LimitExceeded:
            raise TransportError(
                f"Transport {self.alias!r}: no free connection to {self._where} within "
                f"{self.connect_timeout:g} s; raise OPTIONS['pool_limit']."
            ) from None
        try:
            self._send(connection, destination, messages)
        except TransportError:
            connection.collect()
            raise
        except _ERRORS as exc:
            # The connection's state is unknown: drop it without talking to the broker; the
            # pool opens a new one for the next send.
            connection.collect()
            raise TransportError(
                f"Transport {self.alias!r}: sending to exchange {destination.name!r} on "
                f"{self._where} failed: {type(exc).__qualname__}: {exc}"
            ) from exc
        finally:
            connection.release()

    @property
    def _where(self) -> str:
        return self._connection.as_uri()

    def _send(
        self, connection: Connection, destination: Destination, messages: Sequence[Message]
    ) -> None:
        channel = connection.default_channel
        returned = _returned_on(channel)
        exchange = self._exchange(destination.name)
        declared: set[str] = channel.__dict__.setdefault("_domain_events_declared", set())
        if destination.name not in declared:
            exchange(channel).declare()
            declared.add(destination.name)
        producer = Producer(channel, exchange=exchange, auto_declare=False)
        for message in messages:
            headers, body = encode(message, destination.mode)
            content_type = headers.pop("content-type")
            returned.clear()
            producer.publish(
                body,
                routing_key=destination.routing_key,
                headers=headers,
                content_type=content_type,
                content_encoding="utf-8",
                delivery_mode=2,
                mandatory=True,
                message_id=message.id,
                retry=False,
                timeout=self.confirm_timeout,
            )
            if returned:
                reason = returned[0]
                raise TransportError(
                    f"Transport {self.alias!r}: message {message.id} to exchange "
                    f"{destination.name!r} with routing key {destination.routing_key!r} is "
                    f"unroutable ({reason}): no queue is bound for it. Bind a queue (start the "
                    f"consumer) before sending, or route the event elsewhere."
                )

    def consume(
        self,
        destinations: Sequence[Destination],
        queue: str,
        handle: Callable[[Received], None],
        stop: threading.Event,
    ) -> None:
        """Consume the durable queue ``queue``, bound to each destination's exchange by its
        routing key, on a connection of its own; messages are acknowledged only through
        ``Received``. Raises ``TransportError`` when the connection fails."""
        bindings = [
            binding(self._exchange(d.name), routing_key=d.routing_key) for d in destinations
        ]
        connection = self._connection.clone()
        failed = False
        try:
            connection.connect()
            channel = connection.channel()
            # py-amqp would decode bodies by their content encoding: the bytes are what count.
            channel.auto_decode = False
            channel.basic_qos(prefetch_size=0, prefetch_count=self.prefetch_count, a_global=False)
            consumed = Queue(queue, bindings=bindings, durable=True)
            consumed(channel).declare()
            consumer = Consumer(
                channel,
                queues=[consumed],
                on_message=lambda message: handle(RabbitMQReceived(message)),
                no_ack=False,
                auto_declare=False,
            )
            with consumer:
                while not stop.is_set():
                    try:
                        connection.drain_events(timeout=self.poll_interval)
                    except TimeoutError:
                        continue
        except _ERRORS as exc:
            failed = True
            raise TransportError(
                f"Transport {self.alias!r}: consuming {queue!r} on {self._where} failed: "
                f"{type(exc).__qualname__}: {exc}"
            ) from exc
        finally:
            # Messages still unacknowledged go back to the queue as the channel closes.
            if failed:
                connection.collect()
            else:
                _close(connection)

    def close(self) -> None:
        """Close every pooled connection; the pool opens new ones when used again."""
        self._pool.force_close_all()


def _close(connection: Connection) -> None:
    try:
        connection.close()
    except _ERRORS:
        connection.collect()


def _returned_on(channel: Any) -> list[str]:
    # Returned messages arrive on the channel before its confirm; the callback is registered
    # once per channel and the list is cleared before each publish.
    found: list[str] | None = channel.__dict__.get("_domain_events_returned")
    if found is not None:
        return found
    returned: list[str] = []
    channel.__dict__["_domain_events_returned"] = returned

    def on_return(exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        returned.append(str(exc) or "returned")

    channel.events["basic_return"].add(on_return)
    return returned


class RabbitMQReceived(Received):
    """A message a RabbitMQ consumer got, its CloudEvents content read from the wire."""

    def __init__(self, message: Any) -> None:
        self._message = message
        headers = dict(message.headers or {})
        content_type = message.properties.get("content_type") or message.content_type
        if content_type:
            headers["content-type"] = content_type
        self.raw_headers = headers
        body = message.body
        self.raw_body = body.encode() if isinstance(body, str) else bytes(body)
        self.redelivered = bool(message.delivery_info.get("redelivered"))
        try:
            self.message, self.error = from_wire(headers, self.raw_body), None
        except MessageFormatError as exc:
            self.message, self.error = None, exc

    def ack(self) -> None:
        """Acknowledge it: the broker forgets it."""
        self._message.ack()

    def reject(self, requeue: bool) -> None:
        """Reject it: back in the queue if ``requeue``, else dropped or dead-lettered."""
        self._message.reject(requeue=requeue)

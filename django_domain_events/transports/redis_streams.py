"""The Redis Streams transport, through redis-py (the only module importing it).

A destination is one stream, ``<stream_prefix><name>``; a message is one entry, its routing
key a field of its own. Sending is one ``MULTI``/``EXEC`` per batch on one pooled connection,
so ``send()`` returns only once Redis accepted every entry of the batch. A consumer's queue is
a consumer group of that name on each destination's stream; the group hands over only the
entries whose routing key matches the destination's ``routing_key`` (an AMQP topic pattern:
``*`` one word, ``#`` any number of words), and acknowledges the others unseen, so a
subscription means what it means on RabbitMQ.

Redis acknowledges from memory: see the ``wait_for_replicas`` option and check W105.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import redis
from django.core.checks import CheckMessage, Warning
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from django_domain_events.exceptions import MessageFormatError, TransportError
from django_domain_events.integration.messages import Message, encode, from_wire
from django_domain_events.transports.base import Destination, Received, Transport

logger = logging.getLogger("django_domain_events")

DEFAULT_OPTIONS: dict[str, Any] = {
    # Destinations are the streams "<stream_prefix><name>".
    "stream_prefix": "domain-events:",
    # Seconds one attempt to connect may take; a send tries once, the delivery's retries and
    # the relay do the rest.
    "connect_timeout": 5.0,
    # Seconds Redis may take to answer one command (a batch's EXEC included).
    "socket_timeout": 10.0,
    # Connections the pool keeps open at most (threads beyond it wait up to connect_timeout).
    "pool_limit": 10,
    # Entries a consumer reads at once.
    "prefetch_count": 10,
    # Seconds a consumer blocks waiting for entries before it looks at its stop event again.
    "poll_interval": 1.0,
    # Seconds an entry stays unacknowledged by a consumer before another consumer of the group
    # takes it over (its consumer died); longer than the slowest handling of one message.
    "claim_idle": 60.0,
    # Where a new consumer group starts reading a stream: "0" all it holds, "$" only new
    # entries.
    "group_start": "0",
    # Trim each stream to about this many entries when sending (None: never trim).
    "maxlen": None,
    # Delete an entry from its stream once acknowledged: only when one group reads it.
    "delete_acked": False,
    # Replicas that must hold a batch before send() returns (WAIT), and how long to wait.
    "wait_for_replicas": 0,
    "replica_timeout": 1.0,
    # Whether check W105 asks the server whether it keeps anything on disk.
    "check_persistence": True,
}
"""The ``OPTIONS`` of a Redis Streams transport, and their defaults."""

BODY_FIELD = "body"
"""The stream field holding a message's body; the other fields are its headers."""

ROUTING_KEY_FIELD = "routing_key"
"""The stream field holding the routing key the message was sent with."""

_ERRORS = (OSError, RedisError)

W105 = "django_domain_events.W105"


class RedisStreamsTransport(Transport):
    """Sends to and consumes from streams of a Redis server (``URL``:
    ``redis://[:password@]host:6379/db``, ``rediss://`` for TLS)."""

    name: ClassVar[str] = "redis"

    def __init__(self, alias: str, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(alias, url or "redis://127.0.0.1:6379/0", options)
        settings = self.options_over(DEFAULT_OPTIONS)
        self.stream_prefix = str(settings["stream_prefix"])
        self.connect_timeout = float(settings["connect_timeout"])
        self.socket_timeout = float(settings["socket_timeout"])
        self.prefetch_count = int(settings["prefetch_count"])
        self.poll_interval = float(settings["poll_interval"])
        self.claim_idle = float(settings["claim_idle"])
        self.group_start = str(settings["group_start"])
        self.maxlen = None if settings["maxlen"] is None else int(settings["maxlen"])
        self.delete_acked = bool(settings["delete_acked"])
        self.wait_for_replicas = int(settings["wait_for_replicas"])
        self.replica_timeout = float(settings["replica_timeout"])
        self.check_persistence = bool(settings["check_persistence"])
        if self.socket_timeout <= self.poll_interval:
            raise TransportError(
                f"Transport {alias!r}: OPTIONS['socket_timeout'] ({self.socket_timeout:g} s) "
                f"must exceed OPTIONS['poll_interval'] ({self.poll_interval:g} s), which a "
                f"consumer's read blocks for."
            )
        self._pool = redis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=int(settings["pool_limit"]),
            timeout=self.connect_timeout,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.socket_timeout,
            # One attempt per command: the outbox and the consumer's caller retry.
            retry=Retry(NoBackoff(), 0),
        )
        self._client = redis.Redis(connection_pool=self._pool)

    @property
    def _where(self) -> str:
        kwargs = self._pool.connection_kwargs
        if "path" in kwargs:
            return f"redis+unix://{kwargs['path']}"
        return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"

    def stream_for(self, name: str) -> str:
        """The stream a destination named ``name`` is."""
        return f"{self.stream_prefix}{name}"

    def dead_letter_stream_for(self, queue: str) -> str:
        """The stream where ``queue``'s rejected messages go (``reject(requeue=False)``)."""
        return f"{self.stream_prefix}dead-letter:{queue}"

    # Sending -----------------------------------------------------------------------------

    def send(self, destination: Destination, messages: Sequence[Message]) -> None:
        """Append ``messages`` to the stream of ``destination.name`` in one ``MULTI``/``EXEC``
        (then ``WAIT`` for replicas, if asked), on one pooled connection."""
        if not messages:
            return
        stream = self.stream_for(destination.name)
        commands: list[tuple[Any, ...]] = [("MULTI",)]
        for message in messages:
            headers, body = encode(message, destination.mode)
            trim: tuple[Any, ...] = ("MAXLEN", "~", self.maxlen) if self.maxlen else ()
            fields = [*headers.items(), (ROUTING_KEY_FIELD, destination.routing_key)]
            commands.append(
                ("XADD", stream, *trim, "*", *_flat(fields), BODY_FIELD, body),
            )
        commands.append(("EXEC",))
        if self.wait_for_replicas:
            commands.append(
                ("WAIT", self.wait_for_replicas, int(self.replica_timeout * 1000)),
            )
        try:
            replies = self._run_on_one_connection(commands)
        except TransportError:
            raise
        except _ERRORS as exc:
            raise TransportError(
                f"Transport {self.alias!r}: sending to stream {stream!r} on {self._where} "
                f"failed: {type(exc).__qualname__}: {exc}"
            ) from exc
        added = replies[len(messages) + 1]
        failed = [reply for reply in added if isinstance(reply, Exception)]
        if failed:
            raise TransportError(
                f"Transport {self.alias!r}: Redis refused entries for stream {stream!r} on "
                f"{self._where}: {failed[0]}"
            )
        if self.wait_for_replicas:
            replicas = int(replies[-1])
            if replicas < self.wait_for_replicas:
                raise TransportError(
                    f"Transport {self.alias!r}: only {replicas} of the "
                    f"{self.wait_for_replicas} replicas asked for (OPTIONS['wait_for_replicas']) "
                    f"acknowledged the batch to {stream!r} on {self._where} within "
                    f"{self.replica_timeout:g} s; it is on the primary, and sent again."
                )

    def _run_on_one_connection(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` at once on one pooled connection and read every reply (a
        transaction pipeline, with ``WAIT`` after ``EXEC`` on the same connection, which
        redis-py's pipelines cannot do). Raises what the first error reply is."""
        try:
            connection = self._pool.get_connection()
        except RedisConnectionError as exc:
            if "No connection available" in str(exc):
                raise TransportError(
                    f"Transport {self.alias!r}: no free connection to {self._where} within "
                    f"{self.connect_timeout:g} s; raise OPTIONS['pool_limit']."
                ) from None
            raise
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            replies: list[Any] = []
            error: ResponseError | None = None
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except ResponseError as exc:
                    # The other replies still have to be read, or the connection is unusable.
                    replies.append(exc)
                    error = error or exc
            if error is not None:
                raise error
            return replies
        except BaseException:
            # Replies may be left unread: the connection's state is unknown.
            connection.disconnect()
            raise
        finally:
            self._pool.release(connection)

    # Consuming ---------------------------------------------------------------------------

    def consume(
        self,
        destinations: Sequence[Destination],
        queue: str,
        handle: Callable[[Received], None],
        stop: threading.Event,
    ) -> None:
        """Read the consumer group ``queue`` of each destination's stream (creating it) as
        this process's consumer, handing over the entries whose routing key matches the
        destination's; first the entries this consumer took and did not acknowledge, then
        those of dead consumers idle for ``claim_idle``, then new ones. Raises
        ``TransportError`` when the connection fails."""
        patterns: dict[str, list[str]] = {}
        for destination in destinations:
            patterns.setdefault(self.stream_for(destination.name), []).append(
                destination.routing_key
            )
        reading = _Reading(self, queue, patterns, handle, stop)
        try:
            reading.run()
        except _ERRORS as exc:
            raise TransportError(
                f"Transport {self.alias!r}: consuming {queue!r} on {self._where} failed: "
                f"{type(exc).__qualname__}: {exc}"
            ) from exc

    def close(self) -> None:
        """Close every pooled connection; the pool opens new ones when used again."""
        self._pool.disconnect()

    # Checks ------------------------------------------------------------------------------

    def check(self) -> list[CheckMessage]:
        """W105 when the server writes no append-only file and no replica is waited for:
        an entry Redis accepted is then lost if it stops before its next snapshot (or for
        good, without snapshots)."""
        if not self.check_persistence or self.wait_for_replicas:
            return []
        try:
            persistence = self._persistence()
        except _ERRORS as exc:
            logger.debug("Transport %r: could not ask Redis about persistence: %s", self, exc)
            return []
        if persistence.get("appendonly") == "yes":
            return []
        saves = persistence.get("save", "")
        kept = (
            f"only snapshots (save {saves!r}): entries accepted since the last one are lost"
            if saves
            else "nothing on disk (no append-only file, no snapshots): every entry is lost"
        )
        return [
            Warning(
                f"Transport {self.alias!r}: the Redis server at {self._where} keeps {kept} "
                f"when it stops or crashes, although send() reported them sent.",
                hint="Turn on the append-only file (CONFIG SET appendonly yes, appendfsync "
                "everysec or always, and in redis.conf), or set OPTIONS['wait_for_replicas']; "
                "set OPTIONS['check_persistence'] = False or SILENCED_SYSTEM_CHECKS = "
                f"['{W105}'] where losing them is acceptable.",
                id=W105,
            )
        ]

    def _persistence(self) -> dict[str, str]:
        try:
            found: dict[str, str] = {}
            for name in ("appendonly", "save"):
                for key, value in self._client.config_get(name).items():
                    found[_text(key)] = _text(value)
            return found
        except ResponseError:
            # CONFIG is often disabled on managed servers; INFO still says whether AOF is on.
            info = self._client.info("persistence")
            return {"appendonly": "yes" if info.get("aof_enabled") else "no"}


class _Reading:
    """One ``consume()`` call: this process's consumer of one group on a few streams."""

    def __init__(
        self,
        transport: RedisStreamsTransport,
        group: str,
        patterns: dict[str, list[str]],
        handle: Callable[[Received], None],
        stop: threading.Event,
    ) -> None:
        self.transport = transport
        self.client = transport._client
        self.group = group
        self.patterns = patterns
        self.handle = handle
        self.stop = stop
        # Stable across calls in one thread: after a reconnect, the entries Redis handed this
        # consumer before the failure are read back from its pending list at once.
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        # The entries pending for this consumer come first: what it took before a failure.
        self.backlog = True
        self.next_claim = 0.0

    def run(self) -> None:
        for stream in self.patterns:
            try:
                self.client.xgroup_create(
                    stream, self.group, id=self.transport.group_start, mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        # A failure raises out of the loop: what this consumer holds is read back by its
        # next call in this thread, or claimed by another consumer after claim_idle.
        while not self.stop.is_set():
            if self.backlog:
                self.backlog = self._hand_over(self._read("0", block=None), True)
            elif time.monotonic() >= self.next_claim:
                self.next_claim = time.monotonic() + self.transport.claim_idle / 2
                self.backlog = self._claim_idle_entries()
            else:
                self.backlog = self._hand_over(
                    self._read(">", block=self.transport.poll_interval), False
                )
        self._leave()

    def _read(self, start: str, block: float | None) -> list[tuple[str, bytes, Any]]:
        """Entries of the group for this consumer, oldest first per stream: new ones
        (``>``), or those pending for it (``0``)."""
        found: Any = self.client.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(self.patterns, start),
            count=self.transport.prefetch_count,
            block=None if block is None else max(1, int(block * 1000)),
        )
        return [
            (_text(stream), entry_id, fields)
            for stream, entries in found or ()
            for entry_id, fields in entries
        ]

    def _hand_over(self, entries: list[tuple[str, bytes, Any]], pending: bool) -> bool:
        """Give ``entries`` to ``handle()``; True when some are left pending for this
        consumer (one was requeued, or some were never handed over)."""
        if pending and not entries:
            return False
        counts = self._delivery_counts(entries) if pending else {}
        for stream, entry_id, fields in entries:
            if self.stop.is_set():
                return True
            if not fields:
                # Trimmed or deleted while pending: nothing left to give.
                self.client.xack(stream, self.group, entry_id)
                continue
            received = RedisStreamsReceived(
                self, stream, entry_id, fields, counts.get((stream, entry_id), 1)
            )
            if not any(_topic_matches(p, received.routing_key) for p in self.patterns[stream]):
                # Not bound to this queue: as a topic exchange would, it never reaches it.
                self.client.xack(stream, self.group, entry_id)
                continue
            self.handle(received)
            if received.requeued:
                # Read again from the pending list in stream order: the requeued entry
                # comes back before those that followed it.
                return True
        return pending

    def _delivery_counts(self, entries: list[tuple[str, bytes, Any]]) -> dict[Any, int]:
        counts: dict[Any, int] = {}
        for stream in {stream for stream, _, _ in entries}:
            ids = [entry_id for s, entry_id, _ in entries if s == stream]
            for row in self.client.xpending_range(
                stream,
                self.group,
                min=ids[0],
                max=ids[-1],
                count=len(ids),
                consumername=self.consumer,
            ):
                counts[(stream, row["message_id"])] = int(row["times_delivered"])
        return counts

    def _claim_idle_entries(self) -> bool:
        """Take over the entries other consumers left unacknowledged for ``claim_idle``
        (their process died); True when some were taken."""
        idle = max(1, int(self.transport.claim_idle * 1000))
        taken = False
        for stream in self.patterns:
            # With JUSTID: the ids taken, and their delivery counts left as they were.
            claimed: Any = self.client.xautoclaim(
                stream,
                self.group,
                self.consumer,
                min_idle_time=idle,
                start_id="0-0",
                count=self.transport.prefetch_count,
                justid=True,
            )
            if claimed:
                logger.info(
                    "Consumer %s took over %d entries of %s left unacknowledged for %g s",
                    self.consumer,
                    len(claimed),
                    stream,
                    self.transport.claim_idle,
                )
                taken = True
        if taken:
            self.next_claim = 0.0  # more may be waiting
        return taken

    def _leave(self) -> None:
        """On a clean stop: release the entries this consumer read and did not settle, so
        another consumer takes them at its next claim instead of after ``claim_idle``; and
        leave the groups where it holds nothing, so stopped processes do not pile up in
        ``XINFO CONSUMERS``."""
        idle = max(1, int(self.transport.claim_idle * 1000))
        for stream in self.patterns:
            try:
                held: Any = self.client.xpending_range(
                    stream, self.group, min="-", max="+", count=1000, consumername=self.consumer
                )
                if held:
                    # Claimed by itself with an idle time that makes them due for XAUTOCLAIM;
                    # JUSTID leaves their delivery counts alone.
                    self.client.xclaim(
                        stream,
                        self.group,
                        self.consumer,
                        min_idle_time=0,
                        message_ids=[row["message_id"] for row in held],
                        idle=idle,
                        justid=True,
                    )
                else:
                    self.client.xgroup_delconsumer(stream, self.group, self.consumer)
            except _ERRORS as exc:
                logger.debug("Consumer %s could not leave %s: %s", self.consumer, stream, exc)
                return


class RedisStreamsReceived(Received):
    """A stream entry a consumer group handed over, its CloudEvents content read from its
    fields."""

    def __init__(
        self,
        reading: _Reading,
        stream: str,
        entry_id: bytes,
        fields: Mapping[bytes, bytes],
        delivery_count: int,
    ) -> None:
        self._reading = reading
        self.stream = stream
        self.entry_id = _text(entry_id)
        self.delivery_count = delivery_count
        """How many times the group handed this entry over, this time included."""
        self.redelivered = delivery_count > 1
        self.requeued = False
        self._fields = fields
        headers: dict[str, Any] = {}
        body = b""
        for key, value in fields.items():
            name = _text(key)
            if name == BODY_FIELD:
                body = bytes(value)
            else:
                headers[name] = _text_or_bytes(value)
        self.routing_key = str(headers.get(ROUTING_KEY_FIELD, ""))
        self.raw_headers = headers
        self.raw_body = body
        try:
            self.message, self.error = from_wire(headers, body), None
        except MessageFormatError as exc:
            self.message, self.error = None, exc

    def ack(self) -> None:
        """Acknowledge it (XACK; and XDEL with ``delete_acked``): the group forgets it."""
        transport = self._reading.transport
        pipe = self._reading.client.pipeline(transaction=True)
        pipe.xack(self.stream, self._reading.group, self.entry_id)
        if transport.delete_acked:
            pipe.xdel(self.stream, self.entry_id)
        pipe.execute()

    def reject(self, requeue: bool) -> None:
        """Requeue: left pending, handed over again before what followed it. Otherwise:
        copied to the queue's dead-letter stream and acknowledged, in one transaction."""
        if requeue:
            self.requeued = True
            return
        reading = self._reading
        dead = reading.transport.dead_letter_stream_for(reading.group)
        pipe = reading.client.pipeline(transaction=True)
        fields: dict[Any, Any] = dict(self._fields)
        fields.update(dead_letter_stream=self.stream, dead_letter_id=self.entry_id)
        pipe.xadd(dead, fields)
        pipe.xack(self.stream, reading.group, self.entry_id)
        pipe.execute()


def _flat(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [item for pair in pairs for item in pair]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text_or_bytes(value: bytes) -> str | bytes:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value


def _topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether ``routing_key`` matches the AMQP topic ``pattern``: words split by dots,
    ``*`` one word, ``#`` zero or more words."""
    return _words_match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _words_match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    if pattern[0] == "#":
        return _words_match(pattern[1:], words) or (
            bool(words) and _words_match(pattern, words[1:])
        )
    return bool(words) and pattern[0] in ("*", words[0]) and _words_match(pattern[1:], words[1:])


__all__ = ["DEFAULT_OPTIONS", "RedisStreamsReceived", "RedisStreamsTransport"]

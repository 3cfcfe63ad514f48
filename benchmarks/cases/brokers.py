"""Integration events through RabbitMQ, end to end, beside the same bytes sent and taken by hand.

- B10: kombu publishing the CloudEvents bodies our transport sends (built with
  ``integration.messages``) to a durable topic exchange, persistent, each confirmed by the broker
  before the next, and a consumer process taking them from a bound queue with a manual ack
  (prefetch 10, as ours): messages per second from the first publish to the last ack. No
  database on either side.
- B11: what an app without the outbox and the inbox would write: B1's row with the same message
  sent on commit (kombu, confirmed, persistent), and a consumer process that writes the effect
  row (the message's id as its key, so a copy is refused) in its own transaction, then acks.
  Against B10: what the two databases' commits cost; broker-e2e against it: what the outbox,
  the relay and the inbox cost over the dual write.
- broker-e2e: ``publish()`` of an integration event routed to RabbitMQ, one per ``atomic()``; a
  relay process sends each delivery (routes are ``"deferred"``: the relay carries them),
  listening on PostgreSQL; a consumer process (``manage.py consume_events``) runs the
  ``@consumer`` receiver in one transaction with its inbox row, and its effect is a row of
  its own. Timed from the first publish to the last effect.
- broker-latency: commit → the receiver's effect (its row's ``occurred_at``) through the same
  two processes, over unloaded publishes made one at a time. On SQLite the relay polls every
  0.1 s, having nothing to listen to.

Each run uses exchanges and queues of its own, deleted when the run ends. The relay and the
consumer are started for each case and stopped after it, through ``benchmarks/children.py``.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from kombu import Connection, Exchange, Producer, Queue

from django_domain_events import Envelope, publish
from django_domain_events.declaration.registry import registry
from django_domain_events.ids import uuid7
from django_domain_events.integration.messages import encode
from django_domain_events.integration.sending import message_for

from .. import children
from ..benchapp.events import RAW_EVENT_TYPE, TOTAL, raw_payload
from ..benchapp.integration import SUBMITTED_TYPE, OrderSubmitted
from ..benchapp.models import RawEvent
from ..harness import Bench, Target, latency_case, rate_case

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ_URL = os.environ.get("DDE_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
RABBITMQ_START = "rabbitmq-server -detached (or: systemctl start rabbitmq-server)"
BACKEND = "django_domain_events.transports.rabbitmq.RabbitMQTransport"
RUN = uuid.uuid4().hex[:8]
RAW_NAME = f"dde-bench-raw-{RUN}"
"""B10's exchange and queue."""
NAME = f"dde-bench-{RUN}"
"""Our cases' exchange and queue."""
PREFETCH = 10
"""Messages a consumer holds unacknowledged: the RabbitMQ transport's default."""
WAIT_SECONDS = 300


def rabbitmq_unavailable() -> str | None:
    """Why the broker cannot be used, or None."""
    url = urlsplit(RABBITMQ_URL)
    host, port = url.hostname or "127.0.0.1", url.port or 5672
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError:
        return f"RabbitMQ not reachable at {host}:{port}; start it with: {RABBITMQ_START}"


_declared: set[str] = set()


def _delete_declared() -> None:
    try:
        with Connection(RABBITMQ_URL, connect_timeout=5) as connection:
            channel = connection.channel()
            for name in _declared:
                channel.queue_delete(name)
                channel.exchange_delete(name)
    except OSError:
        pass


def _declare(name: str) -> None:
    """Declare the durable topic exchange ``name`` and the durable queue ``name`` bound to it
    for our event type, and empty the queue: messages are routable before any consumer runs,
    as for a service that subscribed first."""
    if not _declared:
        atexit.register(_delete_declared)
    _declared.add(name)
    with Connection(RABBITMQ_URL, connect_timeout=5) as connection:
        channel = connection.channel()
        exchange = Exchange(name, type="topic", durable=True)
        Queue(name, exchange, routing_key=SUBMITTED_TYPE, durable=True)(channel).declare()
        channel.queue_purge(name)


def _consumers_of(name: str) -> int:
    with Connection(RABBITMQ_URL, connect_timeout=5) as connection:
        return int(connection.channel().queue_declare(name, passive=True).consumer_count)


def _effects(alias: str) -> Any:
    """The receivers' effect rows (the senders' own rows, in B11, have another type)."""
    return RawEvent.objects.using(alias).filter(event_type=SUBMITTED_TYPE)


def _wait(what: str, done: Callable[[], bool], **processes: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"The {name} process exited ({process.returncode}) while waiting for {what}; "
                    f"its error is above."
                )
        if time.monotonic() > deadline:
            raise RuntimeError(f"Gave up waiting {WAIT_SECONDS} s for {what}.")
        time.sleep(0.002)


# B10 ------------------------------------------------------------------------------------------

_RAW_CONSUMER = """
import sys

from kombu import Connection, Consumer, Exchange, Queue

url, name, routing_key, expected, prefetch = sys.argv[1:6]
expected = int(expected)
acked = 0


def on_message(message):
    global acked
    message.ack()
    acked += 1


with Connection(url) as connection:
    channel = connection.channel()
    channel.basic_qos(prefetch_size=0, prefetch_count=int(prefetch), a_global=False)
    queue = Queue(name, Exchange(name, type="topic", durable=True), routing_key=routing_key,
                  durable=True)
    with Consumer(channel, queues=[queue], on_message=on_message, no_ack=False,
                  auto_declare=False):
        print("ready", flush=True)
        while acked < expected:
            connection.drain_events(timeout=60)
print("done", flush=True)
"""
"""B10's consumer: takes ``expected`` messages from the queue, acknowledging each, then says
so on its standard output."""


def _line(process: subprocess.Popen[bytes], what: str) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], WAIT_SECONDS)
    if not ready:
        raise RuntimeError(f"Gave up waiting {WAIT_SECONDS} s for {what}.")
    line = process.stdout.readline().decode().strip()
    if not line:
        raise RuntimeError(f"B10's consumer exited ({process.wait()}) before {what}.")
    return line


def cloudevents(n: int) -> list[tuple[dict[str, str], bytes, str]]:
    """The headers, body and id of the structured CloudEvents message our transport sends for
    each of ``n`` ``OrderSubmitted`` events (``integration.sending.message_for()`` of the event
    and its envelope, encoded by ``integration.messages.encode()``)."""
    found = []
    for i in range(n):
        event_id = uuid7()
        envelope = Envelope(
            event_id=event_id,
            event_type=SUBMITTED_TYPE,
            version=OrderSubmitted.version,
            occurred_at=timezone.now(),
            correlation_id=str(event_id),
        )
        message = message_for(OrderSubmitted(order_id=i, total=TOTAL), envelope)
        headers, body = encode(message, "structured")
        found.append((headers, body, message.id))
    return found


def _publish(producer: Producer, headers: dict[str, str], body: bytes, message_id: str) -> None:
    """Publish one message as our transport does: persistent, mandatory, confirmed."""
    headers = dict(headers)
    content_type = headers.pop("content-type")
    producer.publish(
        body,
        routing_key=SUBMITTED_TYPE,
        headers=headers,
        content_type=content_type,
        content_encoding="utf-8",
        delivery_mode=2,
        mandatory=True,
        message_id=message_id,
        retry=False,
    )


@rate_case(
    "B10",
    "kombu: the same CloudEvents bytes, confirmed, persistent; consumed with manual ack",
    unit="messages/s",
    needs=rabbitmq_unavailable,
)
def raw_broker_round_trip(bench: Bench) -> None:
    _declare(RAW_NAME)
    messages = cloudevents(bench.n)
    consumer = children.start(
        [
            *(sys.executable, "-c", _RAW_CONSUMER),
            *(RABBITMQ_URL, RAW_NAME, SUBMITTED_TYPE, str(bench.n), str(PREFETCH)),
        ],
        os.environ,
        stdout=subprocess.PIPE,
        stderr=None,
    )
    try:
        if _line(consumer, "B10's consumer to start") != "ready":
            raise RuntimeError("B10's consumer did not start.")
        with Connection(
            RABBITMQ_URL, transport_options={"confirm_publish": True, "max_retries": 0}
        ) as connection:
            channel = connection.default_channel
            exchange = Exchange(RAW_NAME, type="topic", durable=True)
            producer = Producer(channel, exchange=exchange, auto_declare=False)
            with bench.timed():
                for headers, body, message_id in messages:
                    _publish(producer, headers, body, message_id)
                done = _line(consumer, "B10's messages to be consumed")
        if done != "done":
            raise RuntimeError(f"B10's consumer said {done!r}, not 'done'.")
        consumer.wait(timeout=60)
        bench.expect("B10 consumer exit status", consumer.returncode, 0)
    finally:
        children.stop(consumer)


# B11 ------------------------------------------------------------------------------------------

_HAND_CONSUMER = """
import json
import signal
import sys

import django
from django.conf import settings

alias, name, routing_key, prefetch = sys.argv[1:5]
settings.DATABASES[alias]["CONN_MAX_AGE"] = 60
django.setup()
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu import Connection, Consumer, Exchange, Queue

from benchmarks.benchapp.models import RawEvent
from benchmarks.cases.brokers import RABBITMQ_URL

stopping = False


def stop(signum, frame):
    global stopping
    stopping = True


def on_message(message):
    event = json.loads(message.body)
    try:
        with transaction.atomic(using=alias):
            RawEvent.objects.using(alias).create(
                id=event["id"],
                event_type=event["type"],
                payload=event["data"],
                occurred_at=timezone.now(),
            )
    except IntegrityError:
        pass  # a copy of a message already handled
    message.ack()


signal.signal(signal.SIGTERM, stop)
with Connection(RABBITMQ_URL) as connection:
    channel = connection.channel()
    channel.basic_qos(prefetch_size=0, prefetch_count=int(prefetch), a_global=False)
    queue = Queue(name, Exchange(name, type="topic", durable=True), routing_key=routing_key,
                  durable=True)
    with Consumer(channel, queues=[queue], on_message=on_message, no_ack=False,
                  auto_declare=False):
        while not stopping:
            try:
                connection.drain_events(timeout=0.25)
            except TimeoutError:
                pass
"""
"""B11's consumer, as an app would write it without the inbox: each message's effect row (its
id the message's, so a copy is refused) in a transaction of its own, then the ack."""


@rate_case(
    "B11",
    "B1 + the message sent on commit (kombu, confirmed); a consumer writes the effect, acks",
    floor="B10",
    unit="messages/s",
    needs=rabbitmq_unavailable,
)
def hand_written_round_trip(bench: Bench) -> None:
    alias = bench.alias
    _declare(RAW_NAME)
    messages = cloudevents(bench.n)
    consumer = children.start(
        [sys.executable, "-c", _HAND_CONSUMER, alias, RAW_NAME, SUBMITTED_TYPE, str(PREFETCH)],
        {**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=None,
    )
    rows = RawEvent.objects.using(alias)
    effects = _effects(alias)
    try:
        _wait("B11's consumer to start", lambda: _consumers_of(RAW_NAME) > 0, consumer=consumer)
        with Connection(
            RABBITMQ_URL, transport_options={"confirm_publish": True, "max_retries": 0}
        ) as connection:
            producer = Producer(
                connection.default_channel,
                exchange=Exchange(RAW_NAME, type="topic", durable=True),
                auto_declare=False,
            )
            with bench.timed():
                for i, (headers, body, message_id) in enumerate(messages):
                    with transaction.atomic(using=alias):
                        rows.create(
                            event_type=RAW_EVENT_TYPE,
                            payload=raw_payload(i),
                            occurred_at=timezone.now(),
                        )
                        transaction.on_commit(
                            partial(_publish, producer, headers, body, message_id), using=alias
                        )
                _wait("B11's effects", lambda: effects.count() >= bench.n, consumer=consumer)
    finally:
        children.stop(consumer)
    bench.expect("B11 effects", effects.count(), bench.n)


# Ours -----------------------------------------------------------------------------------------


def domain_events_settings(*, interval: float, listen: bool) -> dict[str, Any]:
    """``DOMAIN_EVENTS`` of both sides: the transport, the route of ``OrderSubmitted`` to our
    exchange, and the consumer's queue bound to it."""
    return {
        "DISPATCHER": "deferred",
        "RELAY_INTERVAL": interval,
        "RELAY_LISTEN": listen,
        "TRANSPORTS": {
            "default": {
                "BACKEND": BACKEND,
                "URL": RABBITMQ_URL,
                # How often a waiting consumer looks at its stop flag: stopping it between
                # cases takes at most this long. Nothing else depends on it.
                "OPTIONS": {"poll_interval": 0.25},
            }
        },
        "ROUTES": {SUBMITTED_TYPE: {"DESTINATION": NAME}},
        "CONSUME": {
            "QUEUE": NAME,
            "DESTINATIONS": [{"NAME": NAME, "ROUTING_KEY": SUBMITTED_TYPE}],
        },
    }


_SETUP = """
import json
import sys

import django
from django.conf import settings

alias = sys.argv[1]
# Kept between messages and passes, as a long-running process in production should
# (CONN_MAX_AGE): reconnecting for every message would cost more than the message.
settings.DATABASES[alias]["CONN_MAX_AGE"] = 60
if settings.DATABASES[alias]["ENGINE"].endswith("sqlite3"):
    # Three processes write the file at once: a transaction that reads before it writes (the
    # relay's claim) must take the write lock at BEGIN, or SQLite refuses its first write at
    # once ("database is locked") instead of waiting for the lock.
    settings.DATABASES[alias]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
settings.DOMAIN_EVENTS = json.loads(sys.argv[2])
django.setup()
from benchmarks.benchapp import integration
"""

_RELAY = (
    _SETUP
    + """
import signal

from django_domain_events.delivery.relay import Relay

relay = Relay(using=alias)
signal.signal(signal.SIGTERM, lambda signum, frame: relay.stop())
ready = sys.argv[3]
relay.run_forever(on_wait=lambda seconds, listening: open(ready, "a").close())
"""
)
"""A relay process (``Relay.run_forever()``, what ``manage.py relay_events`` runs) sending the
route's deliveries; it touches the ``ready`` file each time it starts waiting."""

_CONSUMER = (
    _SETUP
    + """
from django.core.management import call_command

integration.register_effect_consumer(alias)
call_command("consume_events", database=alias)
"""
)
"""``manage.py consume_events`` on the case's database, with the effect's receiver."""


@contextmanager
def broker_pipeline(bench: Bench) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The route of ``OrderSubmitted`` in this process, and a relay and a consumer process on
    the case's database, both running by the time the block starts; yields them by name."""
    listen = bench.vendor == "postgresql"
    options = domain_events_settings(interval=60 if listen else 0.1, listen=listen)
    _declare(NAME)
    ready = Path(f"/tmp/dde-bench-broker-relay-{uuid.uuid4().hex}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [bench.alias, json.dumps(options)]
    with ExitStack() as stack:
        relay = children.start([sys.executable, "-c", _RELAY, *argv, str(ready)], env, stderr=None)
        stack.callback(ready.unlink, missing_ok=True)
        stack.callback(children.stop, relay)
        consumer = children.start([sys.executable, "-c", _CONSUMER, *argv], env, stderr=None)
        stack.callback(children.stop, consumer)
        stack.enter_context(registry.isolated())
        stack.enter_context(override_settings(DOMAIN_EVENTS=options))
        processes = {"relay": relay, "consumer": consumer}
        _wait("the relay to start", ready.exists, **processes)
        _wait("the consumer to start", lambda: _consumers_of(NAME) > 0, **processes)
        yield processes


@rate_case(
    "broker-e2e",
    "publish() one per atomic() → relay → RabbitMQ → consume_events, inbox → receiver's row",
    floor="B10",
    target=Target(postgresql=0.8, sqlite=0.8),
    unit="messages/s",
    needs=rabbitmq_unavailable,
)
def broker_end_to_end(bench: Bench) -> None:
    alias = bench.alias
    effects = _effects(alias)
    with broker_pipeline(bench) as processes, bench.timed():
        for i in range(bench.n):
            with transaction.atomic(using=alias):
                publish(OrderSubmitted(order_id=i, total=TOTAL), using=alias)
        _wait("the receiver's effects", lambda: effects.count() >= bench.n, **processes)
    bench.expect("effects", effects.count(), bench.n)


@latency_case(
    "broker-latency",
    "RabbitMQ: commit → consumer's effect (relay, broker, inbox), unloaded, one at a time",
    # The goal is the p99's; the p50 is held to the same bound.
    p50_ms=20,
    p99_ms=20,
    needs=rabbitmq_unavailable,
)
def broker_latency(bench: Bench) -> list[float]:
    alias = bench.alias
    effects = _effects(alias)
    committed: dict[uuid.UUID, float] = {}
    with broker_pipeline(bench) as processes:
        # The first messages open the relay's channel and the consumer's connection to the
        # database: not measured.
        for i in range(5):
            with transaction.atomic(using=alias):
                publish(OrderSubmitted(order_id=-1 - i, total=TOTAL), using=alias)
        _wait("the warm-up effects", lambda: effects.count() >= 5, **processes)
        for i in range(bench.n):
            stamp: list[float] = []
            with transaction.atomic(using=alias):
                # Registered before publish()'s own hook, so it runs first, just after COMMIT.
                transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()), using=alias)
                event_id = publish(OrderSubmitted(order_id=i, total=TOTAL), using=alias)
            committed[event_id] = stamp[0]
            _wait(
                "an effect",
                lambda event_id=event_id: effects.filter(pk=event_id).exists(),
                **processes,
            )
            # Unloaded: the relay and the consumer are back waiting before the next publish.
            time.sleep(0.005)
    rows = effects.filter(pk__in=list(committed)).values_list("pk", "occurred_at")
    return [(at.timestamp() - committed[pk]) * 1000 for pk, at in rows]

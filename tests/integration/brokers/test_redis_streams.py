"""The Redis Streams transport on a real Redis: what is sent is on the stream exactly, in both
CloudEvents modes; a consumer group hands it over, redelivers what was not acknowledged (after
a reconnect, a requeue, or from a consumer that was killed), and dead-letters what it rejects;
a server that is down or cut away is a ``TransportError``, and nothing is lost.

Each test uses a stream prefix of its own in Redis database 13 and deletes its keys after it.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import override_settings

from django_domain_events.checks.routes import check_transport_brokers
from django_domain_events.exceptions import TransportError
from django_domain_events.integration.messages import Message, from_wire
from django_domain_events.transports import REDIS_STREAMS, Destination, Received, transport_for
from django_domain_events.transports.redis_streams import RedisStreamsTransport
from tests.brokers import Broker
from tests.conftest import require_service
from tests.processes import ROOT, WorkerProcess, wait_until
from tests.tcp_proxy import TCPProxy

pytestmark = [pytest.mark.services]

REDIS = Broker(
    "redis",
    os.environ.get("DOMAIN_EVENTS_TEST_REDIS_STREAMS_URL", "redis://127.0.0.1:6379/13"),
    "service redis-server start",
)
QUEUE = "billing"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A stream prefix of the test's own; its keys are deleted after it."""
    require_service("Redis", REDIS.host, REDIS.port, REDIS.how_to_start)
    made = f"dde-test-{uuid.uuid4().hex[:12]}:"
    yield made
    client = redis.Redis.from_url(REDIS.url)
    keys = list(client.scan_iter(match=f"{made}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as entered:
        yield entered


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(REDIS.url)
    yield made
    made.close()


def make(stack: ExitStack, prefix: str, url: str = REDIS.url, **options: Any) -> Any:
    """A transport of the test's own on ``url``, closed after the test."""
    transport = RedisStreamsTransport(
        "default", url, {"stream_prefix": prefix, "connect_timeout": 2, **options}
    )
    stack.callback(transport.close)
    return transport


def message(number: int | str, **extensions: str) -> Message:
    return Message(
        id=f"id-{number}",
        source="/shop",
        type="shop.PaymentSettled",
        time=dt.datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=dt.UTC),
        data=b'{"order_id": 7, "amount": "10.00", "note": "caf\\u00e9"}',
        extensions={"dataversion": "1", **extensions},
    )


DESTINATION = Destination("payments", "shop.PaymentSettled")


def consume_until(
    transport: Any,
    handle: Callable[[Received, threading.Event], None],
    destination: Destination = DESTINATION,
    queue: str = QUEUE,
) -> None:
    """Consume in a thread until ``handle`` sets the stop event it is given; fail the test if
    it never does."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            transport.consume([destination], queue, lambda got: handle(got, stop), stop)
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the consumer did not stop"
    if failures:
        raise failures[0]


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_both_modes_round_trip_exactly(
    prefix: str, stack: ExitStack, client: redis.Redis, mode: str
) -> None:
    transport = make(stack, prefix)
    sent = message(1, correlationid="c-1", orderingkey="order-7")
    destination = Destination("payments", "shop.PaymentSettled", mode)  # type: ignore[arg-type]

    transport.send(destination, [sent])

    [(_entry_id, fields)] = client.xrange(f"{prefix}payments")
    assert fields[b"routing_key"] == b"shop.PaymentSettled"
    if mode == "binary":
        assert fields[b"body"] == sent.data  # the payload's very bytes
        assert fields[b"ce_type"] == b"shop.PaymentSettled"
        assert fields[b"ce_orderingkey"] == b"order-7"
        assert fields[b"content-type"] == b"application/json"
    else:
        assert fields[b"content-type"] == b"application/cloudevents+json"
        assert not any(key.startswith(b"ce_") for key in fields)
    headers = {key.decode(): value for key, value in fields.items() if key != b"body"}
    assert from_wire(headers, fields[b"body"]) == sent

    got: list[Received] = []

    def handle(received: Received, stop: threading.Event) -> None:
        got.append(received)
        received.ack()
        stop.set()

    consume_until(transport, handle, destination)
    [received] = got
    assert received.message == sent
    assert received.error is None
    assert received.redelivered is False
    assert client.xpending(f"{prefix}payments", QUEUE)["pending"] == 0


def test_a_batch_is_one_transaction_in_order(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    transport = make(stack, prefix)

    transport.send(DESTINATION, [message(number) for number in range(5)])

    entries = client.xrange(f"{prefix}payments")
    assert [from_wire({"content-type": f[b"content-type"]}, f[b"body"]).id for _, f in entries] == [
        f"id-{number}" for number in range(5)
    ]


def test_maxlen_trims_the_stream_approximately(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    transport = make(stack, prefix, maxlen=10)

    for start in range(0, 300, 50):
        transport.send(DESTINATION, [message(number) for number in range(start, start + 50)])

    # "~": Redis trims whole nodes of its radix tree (100 entries by default), never below 10.
    assert 10 <= client.xlen(f"{prefix}payments") < 300


def test_delete_acked_removes_the_entry_from_the_stream(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    transport = make(stack, prefix, delete_acked=True)
    transport.send(DESTINATION, [message(1)])

    def handle(received: Received, stop: threading.Event) -> None:
        received.ack()
        stop.set()

    consume_until(transport, handle)

    assert client.xlen(f"{prefix}payments") == 0


def test_a_batch_redis_refuses_is_a_transport_error(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    transport = make(stack, prefix)
    client.set(f"{prefix}payments", "not a stream")

    with pytest.raises(TransportError, match=r"refused entries.*WRONGTYPE"):
        transport.send(DESTINATION, [message(1), message(2)])

    # The connection is still usable: its replies were all read.
    transport.send(Destination("other", "x"), [message(3)])
    assert client.xlen(f"{prefix}other") == 1


def test_a_closed_port_is_a_transport_error_naming_the_server(
    prefix: str, stack: ExitStack
) -> None:
    transport = make(stack, prefix, url=REDIS.with_port(1))

    with pytest.raises(TransportError, match=r"payments.*127\.0\.0\.1:1"):
        transport.send(DESTINATION, [message(1)])
    with pytest.raises(TransportError, match=rf"consuming {QUEUE!r} on redis://127\.0\.0\.1:1"):
        transport.consume([DESTINATION], QUEUE, lambda received: None, threading.Event())


def test_a_server_that_never_answers_is_a_transport_error_not_a_hang(
    prefix: str, stack: ExitStack
) -> None:
    from tests.black_hole import BlackHole

    hole = BlackHole()
    stack.callback(hole.close)
    transport = make(stack, prefix, url=f"redis://127.0.0.1:{hole.port}/13", socket_timeout=2)

    with pytest.raises(TransportError, match=f"127.0.0.1:{hole.port}"):
        transport.send(DESTINATION, [message(1)])
    assert hole.accepted == 1  # one attempt per send: the outbox's retries do the rest


def test_sends_reuse_one_pooled_connection(prefix: str, stack: ExitStack) -> None:
    proxy = TCPProxy(REDIS.host, REDIS.port)
    stack.callback(proxy.close)
    transport = make(stack, prefix, url=REDIS.with_port(proxy.port))

    for number in range(5):
        transport.send(DESTINATION, [message(number)])

    assert proxy.forwarded == 1


def test_a_connection_cut_mid_stream_loses_nothing(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    proxy = TCPProxy(REDIS.host, REDIS.port)
    stack.callback(proxy.close)
    transport = make(stack, prefix, url=REDIS.with_port(proxy.port), prefetch_count=2)
    transport.send(DESTINATION, [message(number) for number in range(6)])
    seen: list[tuple[str, bool]] = []
    failures: list[TransportError] = []
    stop = threading.Event()

    def handle(received: Received) -> None:
        assert received.message is not None
        seen.append((received.message.id, received.redelivered))
        if received.message.id == "id-2" and not received.redelivered:
            # The server goes away between the effect and the acknowledgement.
            proxy.cut()
            with pytest.raises(TransportError):
                transport.send(DESTINATION, [message("during the cut")])
        received.ack()
        if len({found for found, _ in seen}) == 6:
            stop.set()

    def run() -> None:
        # What consume_events' supervisor does: start the consumer again after a failure.
        while not stop.is_set():
            try:
                transport.consume([DESTINATION], QUEUE, handle, stop)
            except TransportError as exc:
                failures.append(exc)
                proxy.restore()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    stop.set()
    thread.join(timeout=10)

    assert len(failures) == 1
    assert "consuming 'billing'" in str(failures[0])
    # The entry whose acknowledgement was lost came back at once, marked, and nothing else
    # was lost or handed over twice.
    assert seen == [
        ("id-0", False),
        ("id-1", False),
        ("id-2", False),
        ("id-2", True),
        ("id-3", True),  # read with id-2 before the cut: delivered before
        ("id-4", False),
        ("id-5", False),
    ]
    assert client.xpending(f"{prefix}payments", QUEUE)["pending"] == 0


_KILLED_CONSUMER = textwrap.dedent(
    """
    import sys, threading
    from django.conf import settings
    settings.configure()
    from django_domain_events.transports.base import Destination
    from django_domain_events.transports.redis_streams import RedisStreamsTransport

    url, prefix, queue, flag = sys.argv[1:]
    transport = RedisStreamsTransport("default", url, {"stream_prefix": prefix})

    def handle(received):
        # The effect is done; the process dies before it acknowledges.
        open(flag, "w").write(received.message.id)
        threading.Event().wait()

    transport.consume(
        [Destination("payments", "shop.PaymentSettled")], queue, handle, threading.Event()
    )
    """
)


def test_a_killed_consumers_message_is_redelivered_after_claim_idle(
    prefix: str, stack: ExitStack, client: redis.Redis, tmp_path: Path
) -> None:
    transport = make(stack, prefix, claim_idle=0.5)
    transport.send(DESTINATION, [message(1)])
    flag = tmp_path / "handled"
    worker = WorkerProcess(tmp_path, "consumer")
    stack.callback(worker.kill)
    worker.spawn(
        [sys.executable, "-c", _KILLED_CONSUMER, REDIS.url, prefix, QUEUE, str(flag)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        output=tmp_path / "consumer.log",
    )
    wait_until(
        flag.exists,
        "the consumer process to take the message",
        timeout=60,
        report=lambda: (tmp_path / "consumer.log").read_text(),
    )
    worker.kill()  # SIGKILL between the effect and the acknowledgement
    assert client.xpending(f"{prefix}payments", QUEUE)["pending"] == 1
    got: list[tuple[str, bool, int]] = []

    def handle(received: Any, stop: threading.Event) -> None:
        got.append((received.message.id, received.redelivered, received.delivery_count))
        received.ack()
        stop.set()

    consume_until(transport, handle)

    assert got == [("id-1", True, 2)]
    assert client.xpending(f"{prefix}payments", QUEUE)["pending"] == 0


def test_a_stopped_consumer_releases_what_it_read_and_did_not_settle(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    # claim_idle is long: the second consumer gets the entries only because they were
    # released.
    transport = make(stack, prefix, claim_idle=3600)
    transport.send(DESTINATION, [message(number) for number in range(3)])
    first_done = threading.Event()
    first: list[str] = []

    def run_first() -> None:
        stop = threading.Event()

        def handle(received: Received) -> None:
            assert received.message is not None
            first.append(received.message.id)
            received.ack()
            stop.set()  # stops with id-1 and id-2 read but not handed over

        transport.consume([DESTINATION], QUEUE, handle, stop)
        # Alive while the second consumer runs, so that the two are different consumers.
        first_done.wait(timeout=60)

    thread = threading.Thread(target=run_first)
    thread.start()
    stack.callback(thread.join, 10)
    stack.callback(first_done.set)
    wait_until(lambda: first, "the first consumer to take a message")
    wait_until(lambda: _released(client, prefix), "the first consumer to release its entries")
    second: list[tuple[str, bool]] = []

    def handle(received: Received, stop: threading.Event) -> None:
        assert received.message is not None
        second.append((received.message.id, received.redelivered))
        received.ack()
        if len(second) == 2:
            stop.set()

    consume_until(transport, handle)

    assert first == ["id-0"]
    assert second == [("id-1", True), ("id-2", True)]
    assert client.xpending(f"{prefix}payments", QUEUE)["pending"] == 0


def _released(client: redis.Redis, prefix: str) -> bool:
    rows = client.xpending_range(f"{prefix}payments", QUEUE, min="-", max="+", count=10)
    return len(rows) == 2 and all(row["time_since_delivered"] >= 3_600_000 for row in rows)


def test_a_requeued_message_comes_back_before_those_after_it(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    transport = make(stack, prefix)
    transport.send(DESTINATION, [message(1), message(2)])
    seen: list[tuple[str, bool]] = []

    def handle(received: Received, stop: threading.Event) -> None:
        assert received.message is not None
        seen.append((received.message.id, received.redelivered))
        if len(seen) == 1:
            received.reject(requeue=True)
            return
        received.ack()
        if len(seen) == 3:
            stop.set()

    consume_until(transport, handle)

    assert seen == [("id-1", False), ("id-1", True), ("id-2", True)]
    assert client.xpending(f"{prefix}payments", QUEUE)["pending"] == 0


def test_a_rejected_message_goes_to_the_dead_letter_stream(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    transport = make(stack, prefix)
    transport.send(DESTINATION, [message(1)])
    [(entry_id, fields)] = client.xrange(f"{prefix}payments")

    def handle(received: Received, stop: threading.Event) -> None:
        received.reject(requeue=False)
        stop.set()

    consume_until(transport, handle)

    [(_, dead)] = client.xrange(f"{prefix}dead-letter:{QUEUE}")
    assert dead[b"body"] == fields[b"body"]
    assert dead[b"dead_letter_stream"] == f"{prefix}payments".encode()
    assert dead[b"dead_letter_id"] == entry_id
    assert client.xpending(f"{prefix}payments", QUEUE)["pending"] == 0


def test_only_entries_whose_routing_key_matches_the_binding_are_handed_over(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    transport = make(stack, prefix)
    transport.send(Destination("payments", "shop.refunds.created"), [message("refund")])
    transport.send(Destination("payments", "crm.PaymentSettled"), [message("crm")])
    transport.send(Destination("payments", "shop.PaymentSettled"), [message("payment")])
    seen: list[str] = []

    def handle(received: Received, stop: threading.Event) -> None:
        assert received.message is not None
        seen.append(received.message.id)
        received.ack()
        if received.message.id == "id-payment":
            stop.set()

    consume_until(transport, handle, Destination("payments", "shop.*"))

    assert seen == ["id-payment"]  # "shop.*" is one word after "shop.", as on RabbitMQ
    assert client.xpending(f"{prefix}payments", QUEUE)["pending"] == 0


def test_garbage_on_the_stream_reaches_the_consumer_with_its_error(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    transport = make(stack, prefix)
    client.xadd(f"{prefix}payments", {"routing_key": DESTINATION.routing_key, "body": b"junk"})
    got: list[Received] = []

    def handle(received: Received, stop: threading.Event) -> None:
        got.append(received)
        received.reject(requeue=False)
        stop.set()

    consume_until(transport, handle)

    [received] = got
    assert received.message is None
    assert "Not a CloudEvents message" in str(received.error)
    assert received.raw_body == b"junk"


def test_waiting_for_replicas_that_are_not_there_is_a_transport_error(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    replicas = int(client.info("replication")["connected_slaves"])
    transport = make(stack, prefix, wait_for_replicas=replicas + 1, replica_timeout=0.2)

    with pytest.raises(TransportError, match=rf"only {replicas} of the {replicas + 1} replicas"):
        transport.send(DESTINATION, [message(1)])


def test_the_persistence_check_warns_of_a_server_that_keeps_nothing_on_disk(
    prefix: str, stack: ExitStack, client: redis.Redis
) -> None:
    appendonly = client.config_get("appendonly")["appendonly"]

    def checked(**options: Any) -> list[str]:
        transports = {"default": {"BACKEND": REDIS_STREAMS, "URL": REDIS.url, "OPTIONS": options}}
        with override_settings(DOMAIN_EVENTS={"TRANSPORTS": transports}):
            try:
                return [found.id for found in check_transport_brokers() if found.id]
            finally:
                transport_for("default").close()

    expected = [] if appendonly == "yes" else ["django_domain_events.W105"]
    assert checked() == expected
    assert checked(check_persistence=False) == []
    assert checked(wait_for_replicas=1) == []  # durability comes from the replicas then


def test_the_persistence_check_stays_quiet_when_the_server_is_unreachable(
    prefix: str, stack: ExitStack
) -> None:
    transports = {"default": {"BACKEND": REDIS_STREAMS, "URL": REDIS.with_port(1)}}
    with override_settings(DOMAIN_EVENTS={"TRANSPORTS": transports}):
        stack.callback(transport_for("default").close)
        assert check_transport_brokers() == []

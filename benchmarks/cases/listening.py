"""The relay woken by LISTEN/NOTIFY, beside the relay that polls, both as a real process.

- relay-latency-poll: commit → receiver run (``delivered_at``) through a relay process alone,
  polling every 0.1 s, over unloaded publishes one at a time on the ``"deferred"`` dispatcher.
- relay-latency-listen: the same with a relay that listens (poll interval 60 s: the safety
  net only). On SQLite there is nothing to listen to: there it polls every 0.1 s, as
  relay-latency-poll does, and misses its goal, which is PostgreSQL's.
- relay-poll-e2e: N events published one per ``atomic()``, timed until the polling relay has
  delivered them all; relay-listen-e2e: the same with the listening relay, against it.
- relay-latency-listen-loaded: relay-latency-listen while another process publishes a steady
  load to the same relay (``benchmarks/load.py``), beside the unloaded figure.
- publish-1-quiet: publish-1 with ``RELAY_LISTEN`` off, so no NOTIFY: beside publish-1, the
  cost the NOTIFY adds to a publish.

The relay processes keep their database connection between passes (``CONN_MAX_AGE`` 60).
One relay process runs at a time, started for the case and stopped after it, so that it never
takes the deliveries of another case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from django.db import transaction

from django_domain_events import publish
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

from .. import children, load
from ..benchapp.events import TOTAL, OrderPlaced, publish_orders
from ..benchapp.noops import noop_receivers
from ..harness import Bench, Target, latency_case, rate_case

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 300

_RELAY = """
import signal
import sys

import django
from django.conf import settings

# Kept between passes, as a relay in production should (CONN_MAX_AGE): reconnecting at every
# pass would cost more than the pass.
settings.DATABASES[sys.argv[1]]["CONN_MAX_AGE"] = 60
if sys.argv[5] == "immediate":
    # Another process writes the SQLite file meanwhile: the claim, which reads before it
    # writes, must take the write lock at BEGIN, or SQLite refuses its first write at once
    # ("database is locked") instead of waiting for the lock.
    settings.DATABASES[sys.argv[1]]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
django.setup()
from django_domain_events import receiver
from django_domain_events.delivery.relay import Relay

from benchmarks.benchapp.events import OrderPlaced
from benchmarks.benchapp.noops import noop_1

# The receiver the cases register in their process, known here by the same name.
receiver(OrderPlaced)(noop_1)
relay = Relay(using=sys.argv[1])
signal.signal(signal.SIGTERM, lambda signum, frame: relay.stop())
ready = sys.argv[4]
relay.run_forever(
    interval=float(sys.argv[2]),
    listen=sys.argv[3] == "listen",
    on_wait=lambda seconds, listening: open(ready, "a").close(),
)
"""
"""What a relay process runs: ``Relay.run_forever()`` with the cases' receiver; it touches the
``ready`` file each time it starts waiting."""


@contextmanager
def relay_process(
    bench: Bench, *, interval: float, listen: bool, immediate: bool = False
) -> Iterator[None]:
    """A relay process on the case's database for the block, waiting by the time it starts;
    on SQLite with ``immediate``, its transactions take the write lock as they begin."""
    ready = Path(f"/tmp/dde-bench-relay-{uuid.uuid4().hex}")
    # Through children, so that the relay ends with the run however the run ends.
    process = children.start(
        [
            sys.executable,
            "-c",
            _RELAY,
            bench.alias,
            str(interval),
            "listen" if listen else "poll",
            str(ready),
            "immediate" if immediate and bench.vendor == "sqlite" else "deferred",
        ],
        {**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=None,
        stderr=None,
    )
    try:
        _wait("the relay to start", ready.exists, process)
        yield
    finally:
        children.stop(process)
        ready.unlink(missing_ok=True)


def _wait(what: str, done: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if process.poll() is not None:
            raise RuntimeError(f"The relay process exited while waiting for {what}.")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Gave up waiting {WAIT_SECONDS} s for {what}.")
        time.sleep(0.005)


def _latencies(bench: Bench, *, interval: float, listen: bool, loaded: bool = False) -> list[float]:
    alias = bench.alias
    committed: dict[uuid.UUID, float] = {}
    delivered = Delivery.objects.using(alias).filter(state=DeliveryState.DELIVERED)
    with (
        noop_receivers(1, dispatcher="deferred"),
        relay_process(bench, interval=interval, listen=listen, immediate=loaded),
        load.steady_load(alias, "deferred") if loaded else nullcontext(),
    ):
        for i in range(bench.n):
            stamp: list[float] = []
            with transaction.atomic(using=alias):
                # Registered before publish()'s own hook, so it runs first, just after COMMIT.
                transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()), using=alias)
                event_id = publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
            committed[event_id] = stamp[0]
            while not delivered.filter(event_id=event_id).exists():
                time.sleep(0.002)
            # Unloaded: the relay is back waiting before the next publish.
            time.sleep(0.005)
    rows = delivered.filter(event_id__in=list(committed)).values_list("event_id", "delivered_at")
    return [(at.timestamp() - committed[event_id]) * 1000 for event_id, at in rows]


@latency_case(
    "relay-latency-poll",
    "relay alone, polling every 0.1 s: commit → receiver, unloaded publishes one at a time",
    p50_ms=150,
    p99_ms=250,
)
def relay_latency_poll(bench: Bench) -> list[float]:
    return _latencies(bench, interval=0.1, listen=False)


@latency_case(
    "relay-latency-listen",
    "relay alone, listening (polls every 60 s): commit → receiver, unloaded publishes",
    p50_ms=5,
    p99_ms=20,
)
def relay_latency_listen(bench: Bench) -> list[float]:
    if bench.vendor != "postgresql":
        return _latencies(bench, interval=0.1, listen=False)
    return _latencies(bench, interval=60, listen=True)


@latency_case(
    "relay-latency-listen-loaded",
    f"relay-latency-listen while another process publishes {load.RATE:g}/s to the same relay",
    p50_ms=5,
    p99_ms=20,
    scale=5,
    beside="relay-latency-listen",
)
def relay_latency_listen_loaded(bench: Bench) -> list[float]:
    listen = bench.vendor == "postgresql"
    return _latencies(bench, interval=60 if listen else 0.1, listen=listen, loaded=True)


def _end_to_end(bench: Bench, *, interval: float, listen: bool) -> None:
    alias = bench.alias
    delivered = Delivery.objects.using(alias).filter(state=DeliveryState.DELIVERED)
    with (
        noop_receivers(1, dispatcher="deferred"),
        relay_process(bench, interval=interval, listen=listen and bench.vendor == "postgresql"),
        bench.timed(),
    ):
        publish_orders(bench.n, alias)
        deadline = time.monotonic() + WAIT_SECONDS
        while delivered.count() < bench.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Gave up waiting {WAIT_SECONDS} s for the deliveries.")
            time.sleep(0.01)
    bench.expect("deliveries delivered", delivered.count(), bench.n)


@rate_case(
    "relay-poll-e2e",
    "publish() one per atomic(), delivered by a relay process polling every 0.1 s",
    unit="deliveries/s",
)
def relay_poll_end_to_end(bench: Bench) -> None:
    _end_to_end(bench, interval=0.1, listen=False)


@rate_case(
    "relay-listen-e2e",
    "the same, delivered by a listening relay process (polls every 60 s)",
    floor="relay-poll-e2e",
    target=Target(postgresql=0.95, sqlite=0.95),
    unit="deliveries/s",
)
def relay_listen_end_to_end(bench: Bench) -> None:
    # On SQLite there is no NOTIFY: the relay polls every 0.1 s there, as its floor does.
    _end_to_end(bench, interval=60 if bench.vendor == "postgresql" else 0.1, listen=True)


@rate_case(
    "publish-1-quiet",
    "publish-1 with RELAY_LISTEN off: no NOTIFY (beside publish-1, the NOTIFY's cost)",
    floor="B1",
)
def publish_one_receiver_quiet(bench: Bench) -> None:
    alias = bench.alias
    options = {"RELAY_LISTEN": False}
    with noop_receivers(1, dispatcher="deferred", options=options), bench.timed():
        publish_orders(bench.n, alias)
    bench.expect("events", OutboxEvent.objects.using(alias).count(), bench.n)
    bench.expect("deliveries", Delivery.objects.using(alias).count(), bench.n)

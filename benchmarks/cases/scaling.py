"""Scaling out: 1, 2 and 4 relays, publishers and Celery worker processes, each beside the raw
floor of the same work at the same concurrency.

- scale-update-K: K processes, each doing its share of B7 (an UPDATE per row already written,
  each in its own ``atomic()``) over 10 N rows; scale-relay-K: K relay processes
  (``Relay.run_pass()``, what ``relay_events --once`` runs, batches of 500) draining 10 N owed
  deliveries, against it. Every run of the receiver is recorded by the relay that ran it, and
  the case fails if any delivery ran twice or not at all.
- scale-insert-K: K processes, each doing its share of B1 (``create()`` per ``atomic()``) over N
  rows; scale-publish-K: K processes, each ``publish()``-ing its share of N events one per
  ``atomic()`` (one deferred receiver), against it; scale-publish-quiet-K: the same with
  ``RELAY_LISTEN`` off, so no ``NOTIFY`` at commit (PostgreSQL serialises the commits of
  transactions that notify: beside scale-publish-K, what that costs side by side).
- scale-celery-raw-K: B6 with a prefork worker of K processes: N rows written, 1,000 per
  transaction, each row's task sent on commit; timed until the worker has updated every row.
  scale-celery-K: the same with ``publish_many()`` of 1,000 events per transaction to a Celery
  receiver, timed until the worker has delivered them all, against it.

The children are started once per run (``benchmarks/parallel.py``); each Celery pool once per
run too (``celery -A benchmarks.celery_app worker --concurrency=K``), on a queue of its own.
On a machine with two cores, four processes share two: the ratios to the same-concurrency floor
are what the code costs; the rates themselves stop growing where the cores run out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_domain_events import publish_many, receiver, use_dispatcher
from django_domain_events.declaration.registry import registry
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

from .. import children
from ..benchapp.events import RAW_EVENT_TYPE, TOTAL, OrderPlaced, raw_payload
from ..benchapp.models import RawEvent
from ..harness import Bench, BenchmarkError, Target, rate_case
from ..parallel import RECORDED, Children, record_run
from .celery import RUN, celery_receiver, redis_unavailable

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = (1, 2, 4)
RELAY_FACTOR = 10
"""The relay cases drain ten times N: 100,000 owed deliveries in a full run."""
BATCH = 1_000
"""Rows or events per transaction where the cases write in bulk."""
ONLY_ON = ("postgresql", "mysql")
"""Databases where processes can write side by side, and relays claim with SKIP LOCKED.
SQLite takes one writer at a time: run one relay there."""
WAIT_SECONDS = 600


# Relays -------------------------------------------------------------------------------------


def _owed(alias: str, n: int) -> None:
    """``n`` owed deliveries to ``RECORDED``, written by ``publish_many()`` before the clock."""
    options = {"DISPATCHER": "deferred"}
    with registry.isolated(), override_settings(DOMAIN_EVENTS=options), use_dispatcher("deferred"):
        receiver(OrderPlaced, name=RECORDED)(record_run)
        for start in range(0, n, BATCH):
            with transaction.atomic(using=alias):
                publish_many(
                    [
                        OrderPlaced(order_id=i, total=TOTAL)
                        for i in range(start, min(n, start + BATCH))
                    ],
                    using=alias,
                )


def _check_each_ran_once(bench: Bench, n: int, reports: list[dict[str, object]]) -> None:
    runs: Counter[int] = Counter()
    for report in reports:
        runs.update(report["ran"])  # type: ignore[arg-type]
    twice = sorted(order_id for order_id, times in runs.items() if times > 1)
    if twice:
        raise BenchmarkError(
            f"{len(twice):,} deliveries ran more than once across the relays (order_id "
            f"{', '.join(map(str, twice[:10]))}{', …' if len(twice) > 10 else ''}): two relays "
            f"claimed the same delivery."
        )
    never = n - len(runs)
    if never:
        raise BenchmarkError(f"{never:,} of {n:,} owed deliveries were never run.")
    rows = Delivery.objects.using(bench.alias)
    bench.expect("deliveries delivered", rows.filter(state=DeliveryState.DELIVERED).count(), n)
    bench.expect("deliveries attempted more than once", rows.filter(attempts__gt=1).count(), 0)
    delivered = sum(int(report["done"]) for report in reports)  # type: ignore[call-overload]
    bench.expect("deliveries the relays report delivered", delivered, n)


def _raw_updates(processes: int) -> Callable[[Bench], int]:
    def case(bench: Bench) -> int:
        n = bench.n * RELAY_FACTOR
        now = timezone.now()
        rows = RawEvent.objects.using(bench.alias)
        for start in range(0, n, BATCH):
            rows.bulk_create(
                RawEvent(event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=now)
                for i in range(start, min(n, start + BATCH))
            )
        seconds, reports = Children.run("update", bench.alias, processes)
        bench.took(seconds)
        bench.expect("rows updated", sum(int(report["done"]) for report in reports), n)
        bench.expect("rows handled", rows.filter(handled_at__isnull=False).count(), n)
        return n

    return case


def _relays(processes: int) -> Callable[[Bench], int]:
    def case(bench: Bench) -> int:
        n = bench.n * RELAY_FACTOR
        _owed(bench.alias, n)
        seconds, reports = Children.run("relay", bench.alias, processes)
        bench.took(seconds)
        _check_each_ran_once(bench, n, reports)
        return n

    return case


# Publishers -------------------------------------------------------------------------------


def _raw_inserts(processes: int) -> Callable[[Bench], None]:
    def case(bench: Bench) -> None:
        seconds, _ = Children.run("insert", bench.alias, processes, n=bench.n)
        bench.took(seconds)
        bench.expect("rows", RawEvent.objects.using(bench.alias).count(), bench.n)

    return case


def _publishers(processes: int, **options: object) -> Callable[[Bench], None]:
    def case(bench: Bench) -> None:
        seconds, _ = Children.run("publish", bench.alias, processes, n=bench.n, options=options)
        bench.took(seconds)
        bench.expect("events", OutboxEvent.objects.using(bench.alias).count(), bench.n)
        bench.expect("deliveries", Delivery.objects.using(bench.alias).count(), bench.n)

    return case


# Celery worker pools ------------------------------------------------------------------------


def pool_queue(processes: int) -> str:
    return f"dde-bench-pool{processes}-{RUN}"


class _Pools:
    """The run's Celery workers of 1, 2 and 4 processes, each started on first use."""

    processes: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def ensure(cls, size: int) -> subprocess.Popen[bytes]:
        # All of them on first use: their starts overlap, and an idle worker costs nothing.
        for other in CONCURRENCY:
            process = cls.processes.get(other)
            if process is None or process.poll() is not None:
                cls.processes[other] = cls._start(other)
        return cls.processes[size]

    @classmethod
    def _start(cls, size: int) -> subprocess.Popen[bytes]:
        queue = pool_queue(size)
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.celery_app",
            "worker",
            "--pool=prefork",
            f"--concurrency={size}",
            f"--queues={queue}",
            f"--hostname={queue}@%h",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
        return children.start(command, {**os.environ, "PYTHONPATH": str(ROOT)})


def _wait(what: str, done: Callable[[], bool], worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if worker.poll() is not None:
            raise BenchmarkError(f"The Celery worker exited while waiting for {what}.")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"Gave up waiting {WAIT_SECONDS} s for {what}.")
        time.sleep(0.01)


def _celery_raw(processes: int) -> Callable[[Bench], None]:
    def case(bench: Bench) -> None:
        from ..benchapp.tasks import touch

        worker = _Pools.ensure(processes)
        queue, alias = pool_queue(processes), bench.alias
        rows = RawEvent.objects.using(alias)
        handled = rows.filter(handled_at__isnull=False)

        def send(pks: list[str]) -> None:
            for pk in pks:
                touch.apply_async(args=[pk, alias], queue=queue)

        with bench.timed():
            for start in range(0, bench.n, BATCH):
                with transaction.atomic(using=alias):
                    now = timezone.now()
                    created = rows.bulk_create(
                        RawEvent(event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=now)
                        for i in range(start, min(bench.n, start + BATCH))
                    )
                    pks = [str(row.pk) for row in created]
                    transaction.on_commit(lambda pks=pks: send(pks), using=alias)
            _wait("the rows", lambda: handled.count() >= bench.n, worker)
        bench.expect("rows handled", handled.count(), bench.n)

    return case


def _celery(processes: int) -> Callable[[Bench], None]:
    def case(bench: Bench) -> None:
        worker = _Pools.ensure(processes)
        alias = bench.alias
        delivered = Delivery.objects.using(alias).filter(state=DeliveryState.DELIVERED)
        with celery_receiver(pool_queue(processes)), bench.timed():
            for start in range(0, bench.n, BATCH):
                with transaction.atomic(using=alias):
                    publish_many(
                        [
                            OrderPlaced(order_id=i, total=TOTAL)
                            for i in range(start, min(bench.n, start + BATCH))
                        ],
                        using=alias,
                    )
            _wait("the deliveries", lambda: delivered.count() >= bench.n, worker)
        bench.expect("deliveries delivered", delivered.count(), bench.n)

    return case


def _register() -> None:
    for k in CONCURRENCY:
        processes = "1 process" if k == 1 else f"{k} processes"
        rate_case(
            f"scale-update-{k}",
            f"B7 over 10 N rows, shared by {processes}",
            unit="rows/s",
            only_on=ONLY_ON,
        )(_raw_updates(k))
        rate_case(
            f"scale-relay-{k}",
            f"{k} relay {'process' if k == 1 else 'processes'} draining 10 N owed deliveries "
            f"(none may run twice)",
            floor=f"scale-update-{k}",
            target=Target(postgresql=0.9, sqlite=0.9),
            unit="deliveries/s",
            only_on=ONLY_ON,
        )(_relays(k))
    for k in CONCURRENCY:
        processes = "1 process" if k == 1 else f"{k} processes"
        rate_case(
            f"scale-insert-{k}",
            f"B1 shared by {processes}",
            unit="rows/s",
            only_on=ONLY_ON,
        )(_raw_inserts(k))
        rate_case(
            f"scale-publish-{k}",
            f"publish() 1 event, 1 receiver, one per atomic(), shared by {processes}",
            floor=f"scale-insert-{k}",
            target=Target(postgresql=0.85, sqlite=0.85),
            only_on=ONLY_ON,
        )(_publishers(k))
        rate_case(
            f"scale-publish-quiet-{k}",
            f"scale-publish-{k} with RELAY_LISTEN off: no NOTIFY at commit",
            floor=f"scale-insert-{k}",
            only_on=ONLY_ON,
        )(_publishers(k, RELAY_LISTEN=False))
    for k in CONCURRENCY:
        rate_case(
            f"scale-celery-raw-{k}",
            f"B6 with a prefork worker of {k}, rows written {BATCH:,} per transaction",
            unit="rows/s",
            needs=redis_unavailable,
            only_on=ONLY_ON,
        )(_celery_raw(k))
        rate_case(
            f"scale-celery-{k}",
            f"publish_many() of {BATCH:,} to a Celery receiver, a prefork worker of {k} delivers",
            floor=f"scale-celery-raw-{k}",
            target=Target(postgresql=0.9, sqlite=0.9),
            unit="deliveries/s",
            needs=redis_unavailable,
            only_on=ONLY_ON,
        )(_celery(k))


_register()

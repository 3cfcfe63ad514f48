#!/usr/bin/env python3
"""The Celery dispatcher on PostgreSQL and Redis, with a real prefork worker (2 processes).

    python benchmarks/celery_db_reuse.py                  # N = 2,000, 200 latency samples
    python benchmarks/celery_db_reuse.py --n 500 --samples 50

Prints three measurements:

- publish: ``publish()`` of an event with one Celery receiver, each in its own transaction
  (INSERT, COMMIT, send the task, mark the delivery dispatched), against the floor a project
  writes by hand: an ``INSERT`` and ``task.delay_on_commit()``; and a bare INSERT (B1). Sending
  only, no worker running. Medians of three runs.
- worker: deliveries per second of N queued deliveries to a no-op receiver, with Celery's
  default (its Django fix-up closes the database connection around every task) and with
  ``CELERY_DB_REUSE_MAX``, against B6: a bare task that loads a row, does nothing and updates
  it, with ``CELERY_DB_REUSE_MAX``.
- latency: from COMMIT returning to the worker starting the delivery (``delivered_at``), over
  unloaded publishes made one at a time, p50 and p99, both ways.

Needs PostgreSQL on 127.0.0.1:5432 (database ``dde_bench_celery``, created if missing) and Redis
on 127.0.0.1:6379 (database 14).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import children  # noqa: E402  (the checkout is importable only from here on)

QUEUE = f"dde-bench-{uuid.uuid4().hex[:8]}"
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.celerybench.settings"
os.environ["DDE_BENCH_QUEUE"] = QUEUE
REUSE_MAX = 100


def say(message: str) -> None:
    print(message, flush=True)


def ensure_database() -> None:
    import psycopg

    name = os.environ.get("DDE_BENCH_CELERY_DB", "dde_bench_celery")
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if found.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE domain_events_delivery, domain_events_outbox_event")


def delete_queue(queue: str) -> None:
    from benchmarks.celerybench.app import app

    with app.connection_for_write() as connection:
        # Declared first: kombu's Redis transport deletes only the bindings it knows of.
        bound = app.amqp.queues[queue].bind(connection.default_channel)
        bound.declare()
        bound.delete()


def purge(queue: str) -> None:
    from benchmarks.celerybench.app import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


def rates(runs: dict[str, tuple[Callable[[int], None], str]], n: int) -> dict[str, float]:
    """Median events per second of each ``run(i)`` for i in range(n), over three rounds that
    take the runs in turn, so that a busy moment of the machine hits them all alike."""
    found: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(3):
        for name, (run, queue) in runs.items():
            truncate()
            started = time.perf_counter()
            for i in range(n):
                run(i)
            found[name].append(n / (time.perf_counter() - started))
            purge(queue)
    return {name: statistics.median(values) for name, values in found.items()}


def measure_publish(n: int) -> dict[str, float]:
    from django.db import transaction
    from django.utils import timezone

    from benchmarks.celerybench.handlers import NOTED
    from benchmarks.celerybench.tasks import noop
    from django_domain_events import publish
    from django_domain_events.models import OutboxEvent

    def insert(i: int) -> None:
        OutboxEvent.objects.create(
            event_type=NOTED, payload={"n": i}, occurred_at=timezone.now(), correlation_id="c"
        )

    def bare(i: int) -> None:
        with transaction.atomic():
            insert(i)

    def by_hand(i: int) -> None:
        with transaction.atomic():
            insert(i)
            noop.delay_on_commit(i)

    def outbox(i: int) -> None:
        with transaction.atomic():
            publish(NOTED, {"n": i})

    # Warm up: connections, the producer pool, Django's and Celery's caches.
    for run in (bare, by_hand, outbox):
        for i in range(50):
            run(i)
    purge("celery")
    purge(QUEUE)
    return rates(
        {
            "B1 INSERT, own transaction": (bare, QUEUE),
            "INSERT + task.delay_on_commit()": (by_hand, "celery"),
            "publish(), one Celery receiver": (outbox, QUEUE),
        },
        n,
    )


class Worker:
    def __init__(self, reuse_max: int | None) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("DDE_BENCH_DB_REUSE_MAX", None)
        if reuse_max:
            env["DDE_BENCH_DB_REUSE_MAX"] = str(reuse_max)
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.celerybench.app",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            f"--queues={QUEUE}",
            f"--hostname={QUEUE}@%h",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
        self.process = children.start(command, env)

    def stop(self) -> None:
        children.stop(self.process)


def wait_delivered(count: int, timeout: float = 300) -> None:
    from django_domain_events.models import Delivery, DeliveryState

    deadline = time.monotonic() + timeout
    while Delivery.objects.filter(state=DeliveryState.DELIVERED).count() < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"Gave up waiting for {count} deliveries")
        time.sleep(0.05)


def measure_bare_worker(n: int, reuse_max: int) -> float:
    """B6: rows per second of a bare Celery task that loads a row, does nothing and updates
    it, N of them queued, the same worker with connection reuse."""
    from django.db import transaction
    from django.utils import timezone

    from benchmarks.celerybench.handlers import NOTED
    from benchmarks.celerybench.tasks import touch
    from django_domain_events.models import OutboxEvent

    truncate()
    purge(QUEUE)
    started = timezone.now()
    with transaction.atomic():
        rows = OutboxEvent.objects.bulk_create(
            OutboxEvent(event_type=NOTED, payload={"n": i}, occurred_at=started, correlation_id="c")
            for i in range(n)
        )
    for row in rows:
        touch.apply_async(args=[str(row.pk)], queue=QUEUE)
    worker = Worker(reuse_max)
    try:
        deadline = time.monotonic() + 300
        while OutboxEvent.objects.filter(occurred_at__gt=started).count() < n:
            if time.monotonic() > deadline:
                raise SystemExit("Gave up waiting for the bare tasks")
            time.sleep(0.05)
    finally:
        worker.stop()
    times = sorted(OutboxEvent.objects.values_list("occurred_at", flat=True))
    return (n - 1) / (times[-1] - times[0]).total_seconds()


def measure_worker(n: int, samples: int, reuse_max: int | None) -> dict[str, float]:
    from django.db import transaction

    from benchmarks.celerybench.handlers import NOTED
    from django_domain_events import NamedEvent, publish, publish_many
    from django_domain_events.models import Delivery

    truncate()
    purge(QUEUE)
    for start in range(0, n, 500):
        publish_many([NamedEvent(NOTED, {"n": i}) for i in range(start, min(n, start + 500))])
    worker = Worker(reuse_max)
    try:
        wait_delivered(n)
        times = sorted(Delivery.objects.values_list("delivered_at", flat=True))
        throughput = (n - 1) / (times[-1] - times[0]).total_seconds()

        committed: dict[uuid.UUID, float] = {}
        for i in range(samples):
            stamp: list[float] = []
            with transaction.atomic():
                # Registered before publish()'s own hook, so it runs first, just after COMMIT.
                transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()))
                event_id = publish(NOTED, {"n": i})
            committed[event_id] = stamp[0]
            time.sleep(0.02)
        wait_delivered(n + samples)
    finally:
        worker.stop()
    rows = Delivery.objects.filter(event_id__in=list(committed)).values_list(
        "event_id", "delivered_at"
    )
    latencies = sorted(
        (delivered_at.timestamp() - committed[event_id]) * 1000 for event_id, delivered_at in rows
    )
    return {
        "delivered/s": throughput,
        "latency p50 ms": latencies[len(latencies) // 2],
        "latency p99 ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/celery_db_reuse.py")
    parser.add_argument("--n", type=int, default=2000, help="events per measurement")
    parser.add_argument("--samples", type=int, default=200, help="latency samples")
    args = parser.parse_args(argv)

    children.stop_with_the_run()
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    # As a project's package __init__ does: the app becomes Celery's default.
    import benchmarks.celerybench.app  # noqa: F401

    call_command("migrate", verbosity=0)

    say(f"publish, events/s (N = {args.n}, median of 3; no worker):")
    rates = measure_publish(args.n)
    floor = rates["B1 INSERT, own transaction"]
    for name, value in rates.items():
        say(f"  {name:<34} {value:8.0f}  ({value / floor:.2f} x B1)")

    say(f"worker, prefork -c 2 (N = {args.n}; latency over {args.samples} unloaded publishes):")
    bare = measure_bare_worker(args.n, REUSE_MAX)
    say(f"  B6 bare task, CELERY_DB_REUSE_MAX={REUSE_MAX:<4} {bare:6.0f} rows/s")
    for label, reuse_max in (("default", None), (f"CELERY_DB_REUSE_MAX={REUSE_MAX}", REUSE_MAX)):
        found = measure_worker(args.n, args.samples, reuse_max)
        say(
            f"  {label:<26} {found['delivered/s']:6.0f} delivered/s "
            f"({found['delivered/s'] / bare:.2f} x B6)   commit -> start "
            f"p50 {found['latency p50 ms']:5.1f} ms, p99 {found['latency p99 ms']:5.1f} ms"
        )
    truncate()
    delete_queue(QUEUE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

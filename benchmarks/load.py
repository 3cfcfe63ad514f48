"""A steady publish load in a process of its own, for the latency cases measured under load.

``steady_load()`` starts ``python -m benchmarks.load`` (through ``benchmarks/children.py``, so
it ends with the run) for the block: it publishes ``OrderPlaced`` events, one per ``atomic()``,
at a fixed rate on the case's database, to the receiver the case measures (the Celery worker's
no-op, or the relay's), until it is stopped. A rate the machine cannot hold is not caught up
in bursts: the schedule restarts from now, and the process reports the rate it held.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATE = 100.0
"""Publishes per second of the load: well under what the worker and the relay deliver."""
WAIT_SECONDS = 120


@contextmanager
def steady_load(
    alias: str, receiver: str, *, rate: float = RATE, queue: str = ""
) -> Iterator[None]:
    """A load process publishing ``rate`` events per second on ``alias`` to ``receiver``
    (``"celery"``: the Celery no-op on ``queue``; ``"deferred"``: the relay's no-op) for the
    block, already publishing when it starts."""
    from . import children

    ready = Path(f"/tmp/dde-bench-load-{uuid.uuid4().hex}")
    process = children.start(
        [sys.executable, "-m", "benchmarks.load", alias, receiver, str(rate), queue, str(ready)],
        {**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=None,
    )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not ready.exists():
            if process.poll() is not None:
                raise RuntimeError(f"The load process exited ({process.returncode}) on start.")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Gave up waiting {WAIT_SECONDS} s for the load to start.")
            time.sleep(0.01)
        yield
        if process.poll() is not None:
            raise RuntimeError(f"The load process exited ({process.returncode}) under the case.")
    finally:
        children.stop(process)
        ready.unlink(missing_ok=True)


def main(alias: str, receiver: str, rate: float, queue: str, ready: str) -> None:
    """Publish ``rate`` events a second until SIGTERM; touch ``ready`` after the first."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    from django.conf import settings

    if settings.DATABASES[alias]["ENGINE"].endswith("sqlite3"):
        # Other processes write the file meanwhile: take the write lock as a transaction
        # begins, so that SQLite waits for it rather than refusing a write at once.
        settings.DATABASES[alias]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    django.setup()
    from django.db import connections, transaction

    from django_domain_events import publish
    from django_domain_events import receiver as register

    from .benchapp.events import TOTAL, OrderPlaced

    if receiver == "celery":
        from .benchapp.tasks import register_celery_receiver
        from .celery_app import app  # noqa: F401  (the app the delivery task is sent with)

        register_celery_receiver(queue)
    else:
        from .benchapp.noops import noop_1

        register(OrderPlaced)(noop_1)

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    first = started = time.monotonic()
    scheduled = 0
    published = 0
    while not stopping:
        with transaction.atomic(using=alias):
            publish(OrderPlaced(order_id=-1 - published, total=TOTAL), using=alias)
        published += 1
        scheduled += 1
        if published == 1:
            Path(ready).touch()
        delay = started + scheduled / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.1:
            # Behind by more than a tenth of a second: start the schedule again from now.
            started, scheduled = time.monotonic(), 0
    seconds = time.monotonic() - first
    print(
        f"load: {published:,} publishes in {seconds:.1f} s ({published / seconds:,.0f}/s, "
        f"asked {rate:g}/s)",
        file=sys.stderr,
    )
    connections.close_all()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5])

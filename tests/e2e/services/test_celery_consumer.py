"""The accounting service's consumer inside a real Celery worker (``ConsumeEventsStep`` in
``consumerproject/celery.py``), on the real broker: it books the shop's messages while the
worker runs, and a SIGTERM (Celery's warm shutdown) lets it settle what it holds and exit.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid

import pytest

from tests.e2e.services.two_projects import (
    RabbitMQBroker,
    Services,
    all_of,
    booked,
    consumer_totals,
    figures,
    wait_for_queue,
)
from tests.processes import ROOT, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.services]

COUNT = 10
"""Payments published while the worker runs; ``LATER`` more after it exited."""
LATER = 5


# The step is the same on every transport, which the tests of two projects cover: one is enough.
@pytest.mark.parametrize("broker", [RabbitMQBroker], ids=["rabbitmq"], indirect=True)
def test_a_celery_worker_consumes_and_a_sigterm_settles_what_it_holds_and_exits(
    services: Services,
) -> None:
    worker = services.process("worker", "consumerproject", "celery-worker")
    env = services.accounting_env(through_proxy=False)
    env["PYTHONPATH"] = f"{ROOT / 'consumerproject'}:{env['PYTHONPATH']}"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "consumerproject.celery",
        "worker",
        "--pool=solo",
        "--loglevel=INFO",
        "--hostname=accounting-worker@%h",
        # The worker's own task queue, which no other worker on the broker shares.
        f"--queues=accounting-{uuid.uuid4().hex[:8]}",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
    ]
    worker.starts += 1
    worker.spawn(command, env, worker.output_path)
    wait_until(
        lambda: " ready." in worker.output(),
        "the Celery worker to start",
        timeout=90,
        report=worker.output,
    )
    wait_for_queue(services.broker, services.report)
    services.relay().start(services.shop_env())
    services.publisher(COUNT, "--interval", "0.3").start(services.shop_env())
    wait_until(
        lambda: booked(services.accounting) >= 2,
        "the worker to book the first payments",
        timeout=120,
        interval=0.05,
        report=services.report,
    )

    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    try:
        status = worker.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"The worker did not stop on SIGTERM:\n{worker.output()}")
    log = worker.output()
    assert status == 0, log
    assert "Warm shutdown" in log
    done = re.search(r"Consumer in the worker done: (\d+) messages", log)
    assert done is not None, log
    taken = booked(services.accounting)
    assert int(done.group(1)) == taken, log

    # Every message it booked was acknowledged before it exited: the rest wait on the queue,
    # and the next consumer finds no copy of what the worker booked.
    services.publisher(LATER, "--first", str(COUNT + 1)).start(services.shop_env())
    wait_until(
        lambda: services.route_deliveries("state = 'delivered'") == COUNT + LATER,
        "the relay to send every payment",
        timeout=120,
        report=services.report,
    )
    left = COUNT + LATER - taken
    assert services.broker.queued() == left
    consumer = services.consumer()
    consumer.start(services.accounting_env(through_proxy=False))
    services.wait_booked(COUNT + LATER)
    assert consumer.terminate() == 0, consumer.output()
    assert consumer_totals(consumer) == [f"{left} messages (processed {left})"]
    assert figures(services.shop, services.accounting, services.broker) == all_of(COUNT + LATER)

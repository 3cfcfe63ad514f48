"""The accounting service's consumer inside a real Celery worker (``ConsumeEventsStep`` in
``consumerproject/celery.py``), on the real broker: it books the shop's messages while the
worker runs, and a SIGTERM (Celery's warm shutdown) arriving while a booking is in hand lets it
commit and be acknowledged; the messages behind it go back to the queue, and the worker exits.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import pytest

from tests.e2e.services.two_projects import (
    LedgerLock,
    RabbitMQBroker,
    Services,
    booked,
    consumer_totals,
    figures,
    payment_settled,
    wait_for_queue,
)
from tests.processes import ROOT, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.services]

COUNT = 5
"""Payments the shop sends while the worker runs."""
HELD = 3
"""Messages on the queue when the worker is asked to stop, the first of them in hand."""


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
    services.publisher(COUNT).start(services.shop_env())
    services.wait_booked(COUNT)

    # The next booking waits on the ledger's lock, in its transaction, when SIGTERM arrives.
    lock = LedgerLock(services.accounting)
    try:
        for number in range(HELD):
            services.broker.put("shop.PaymentSettled", *payment_settled(100 + number))
        wait_until(
            lambda: services.broker.queued() == 0,
            "the worker to take the held messages",
            report=services.report,
        )
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: "Stopping the consumer in the worker" in worker.output(),
            "the worker to stop its consumer",
            timeout=60,
            report=worker.output,
        )
    finally:
        lock.release()
    try:
        status = worker.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"The worker did not stop on SIGTERM:\n{worker.output()}")
    log = worker.output()

    assert status == 0, log
    assert "Warm shutdown" in log
    # The message in hand was booked and acknowledged; the two behind it went back.
    assert f"Consumer in the worker done: {COUNT + 1} messages (processed {COUNT + 1})" in log
    assert booked(services.accounting) == COUNT + 1
    assert services.broker.queued() == HELD - 1
    consumer = services.consumer("--max-messages", str(HELD - 1))
    consumer.start(services.accounting_env(through_proxy=False))
    wait_until(lambda: consumer.exited() is not None, "the next consumer to take the rest")
    assert consumer.exited() == 0, consumer.output()
    assert consumer_totals(consumer) == [f"{HELD - 1} messages (processed {HELD - 1})"]
    counted = figures(services.shop, services.accounting, services.broker)
    assert (counted.sent, counted.booked, counted.duplicate_effects) == (COUNT, COUNT + HELD, 0)
    assert (counted.lost, counted.stuck) == (0, 0)

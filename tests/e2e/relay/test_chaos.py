"""A short chaos soak: publishers, two Celery workers and two relays, while workers and relays
are killed with SIGKILL at random and the broker goes away for a while. Afterwards nothing may
be lost, duplicated or stuck. It prints the three figures.

``DOMAIN_EVENTS_CHAOS_SECONDS`` sets how long the chaos lasts (12 s by default, for CI).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from django.utils import timezone

from django_domain_events.models import Delivery, DeliveryState, OutboxEvent
from tests.brokers import BROKERS, delete_queue, make_app
from tests.processes import CeleryWorker, wait_until
from tests.tcp_proxy import TCPProxy
from tests.testapp.models import Effect
from tests.testapp.receivers import RECORDED

from .conftest import Process

pytestmark = [
    pytest.mark.server_db,
    pytest.mark.services,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]

CHAOS_SECONDS = float(os.environ.get("DOMAIN_EVENTS_CHAOS_SECONDS", "12"))


def test_chaos_loses_duplicates_and_strands_nothing(
    start: Callable[..., Process], queue: str, tmp_path: Path
) -> None:
    redis = BROKERS["redis"]
    redis.require()
    proxy = TCPProxy(redis.host, redis.port)
    through_proxy = redis.with_port(proxy.port)
    env = {
        "DOMAIN_EVENTS_TEST_BROKER_URL": through_proxy,
        "DOMAIN_EVENTS_TEST_CELERY_QUEUE": queue,
    }
    settings = {
        "CELERY_APP": "tests.celery_app.app",
        "CELERY_QUEUE": queue,
        "RELAY_GRACE": 1,
        "RELAY_INTERVAL": 0.2,
        "RELAY_LEASE": 2,
        "DISPATCH_TIMEOUT": 5,
    }
    stop = tmp_path / "stop"
    workers = [
        CeleryWorker(through_proxy, queue, tmp_path / f"worker-{n}", name=f"worker-{n}")
        for n in range(2)
    ]
    for worker in workers:
        worker.start()

    def start_relay() -> Process:
        return start("relay_events", "--batch-size", "50", settings=settings, env=env)

    relays = [start_relay(), start_relay()]
    publishers = [
        start("-m", "tests.e2e.relay.chaos_publisher", str(stop), settings=settings, env=env)
        for _ in range(2)
    ]
    chaos = random.Random(os.environ.get("DOMAIN_EVENTS_CHAOS_SEED"))
    kills = Counter[str]()
    try:
        deadline = time.monotonic() + CHAOS_SECONDS
        outage_at = time.monotonic() + CHAOS_SECONDS / 3
        while time.monotonic() < deadline:
            time.sleep(chaos.uniform(0.5, 1.5))
            if outage_at and time.monotonic() > outage_at:
                proxy.cut()
                time.sleep(2)
                proxy.restore()
                outage_at = 0
                kills["broker outage"] += 1
            elif chaos.random() < 0.5:
                victim = chaos.randrange(len(workers))
                workers[victim].kill()
                workers[victim].start()
                kills["worker"] += 1
            else:
                victim = chaos.randrange(len(relays))
                relays[victim].kill()
                relays[victim] = start_relay()
                kills["relay"] += 1
        stop.touch()
        for publisher in publishers:
            assert publisher.wait() == 0, publisher.output()
        published = sum(int(p.output().rsplit("published ", 1)[1]) for p in publishers)
        # Everything settles within the redelivery and dispatch timeouts.
        wait_until(
            lambda: not Delivery.objects.exclude(state=DeliveryState.DELIVERED).exists(),
            "every delivery to be delivered",
            timeout=90,
        )
    finally:
        left = Delivery.objects.exclude(state=DeliveryState.DELIVERED)
        stuck = left.count()
        if stuck:
            # What a failure needs to be understood: where each undelivered one stands.
            print(
                "\nchaos: not delivered:",
                list(
                    left.values_list(
                        "state", "attempts", "next_attempt_at", "dispatched_at", "claimed_until"
                    )[:20]
                ),
                f"database time {timezone.now().isoformat()}",
            )
        for relay in relays:
            relay.signal(signal.SIGTERM)
        for worker in workers:
            worker.stop()
        proxy.close()
        delete_queue(make_app(redis.url, redis.transport_options), queue)

    events = set(OutboxEvent.objects.filter(event_type=RECORDED).values_list("pk", flat=True))
    expected = {(receiver, event) for event in events for receiver in RECEIVERS}
    effects = Counter(Effect.objects.values_list("receiver", "event_id"))
    lost = len(expected - set(effects))
    duplicates = sum(count - 1 for count in effects.values() if count > 1)
    print(
        f"\nchaos: {published} events published, kills {dict(kills)}; "
        f"lost={lost} duplicates={duplicates} stuck={stuck}"
    )
    assert len(events) == published
    assert (lost, duplicates, stuck) == (0, 0, 0)


RECEIVERS = ("celery_tests.record", "celery_tests.record_async")

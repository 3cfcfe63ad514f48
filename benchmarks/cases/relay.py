"""The relay draining owed deliveries, beside the floor of one commit per delivery.

- B7: for each of N rows already written, in its own ``atomic()``, an UPDATE that marks it
  handled: what any relay must at least do when every delivery commits with its effects.
- relay-sync: one relay (``Relay.run_pass()``) draining N owed ``"sync"`` deliveries to a no-op
  receiver: claims in batches, loads the events, runs each receiver in its own transaction.
- relay-shared: relay-sync with a receiver declared ``shares_commit=True``: up to
  ``SHARED_COMMIT_SIZE`` deliveries claimed in one UPDATE and settled in one commit.
- relay-celery: the same relay re-sending N owed Celery deliveries to Redis (no worker reads the
  queue): claims in batches and one send per batch.

The owed rows are written before the clock starts, with ``publish_many()``.
"""

from __future__ import annotations

from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_domain_events import publish_many, use_dispatcher
from django_domain_events.delivery.relay import Relay, RelayTotals
from django_domain_events.models import Delivery, DeliveryState

from ..benchapp.events import RAW_EVENT_TYPE, TOTAL, OrderPlaced, raw_payload
from ..benchapp.models import RawEvent
from ..benchapp.noops import noop_receivers
from ..harness import Bench, Target, rate_case
from .celery import IDLE_QUEUE, celery_app, celery_receiver, purge, redis_unavailable

BATCH = 1_000


def _owed(bench: Bench) -> None:
    """N owed deliveries, old enough for the relay: published on "deferred", then given the
    dispatcher the receivers declare (the relay accepts no other)."""
    alias = bench.alias
    with use_dispatcher("deferred"):
        for start in range(0, bench.n, BATCH):
            with transaction.atomic(using=alias):
                publish_many(
                    [
                        OrderPlaced(order_id=i, total=TOTAL)
                        for i in range(start, min(bench.n, start + BATCH))
                    ],
                    using=alias,
                )


def _drain(bench: Bench) -> RelayTotals:
    with override_settings(DOMAIN_EVENTS={"RELAY_GRACE": 0, "RELAY_BATCH_SIZE": 500}):
        relay = Relay(using=bench.alias)
        with bench.timed():
            return relay.run_pass()


@rate_case("B7", "one UPDATE per existing row, each in its own atomic()", unit="rows/s")
def raw_update_each(bench: Bench) -> None:
    rows = RawEvent.objects.using(bench.alias)
    now = timezone.now()
    created = rows.bulk_create(
        RawEvent(event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=now)
        for i in range(bench.n)
    )
    with bench.timed():
        for row in created:
            with transaction.atomic(using=bench.alias):
                rows.filter(pk=row.pk).update(handled_at=timezone.now())
    bench.expect("B7 rows", rows.filter(handled_at__isnull=False).count(), bench.n)


@rate_case(
    "relay-sync",
    "relay drain: N owed sync deliveries, no-op receiver, one relay",
    floor="B7",
    target=Target(postgresql=0.9, sqlite=0.9),
    unit="deliveries/s",
)
def relay_sync(bench: Bench) -> None:
    with noop_receivers(1, dispatcher="sync"):
        _owed(bench)
        Delivery.objects.using(bench.alias).update(dispatcher="sync")
        _drain(bench)
    delivered = Delivery.objects.using(bench.alias).filter(state=DeliveryState.DELIVERED)
    bench.expect("deliveries delivered", delivered.count(), bench.n)


@rate_case(
    "relay-shared",
    "relay drain: N owed sync deliveries, no-op receiver declared shares_commit=True, one relay",
    floor="B7",
    target=Target(postgresql=1.0, sqlite=1.0),
    unit="deliveries/s",
)
def relay_shared(bench: Bench) -> None:
    with noop_receivers(1, dispatcher="sync", shares_commit=True):
        _owed(bench)
        Delivery.objects.using(bench.alias).update(dispatcher="sync")
        _drain(bench)
    delivered = Delivery.objects.using(bench.alias).filter(state=DeliveryState.DELIVERED)
    bench.expect("deliveries delivered", delivered.count(), bench.n)


@rate_case(
    "relay-celery",
    "relay drain: N owed Celery deliveries re-sent to Redis, one relay",
    unit="deliveries/s",
    needs=redis_unavailable,
)
def relay_celery(bench: Bench) -> None:
    with celery_receiver(IDLE_QUEUE):
        _owed(bench)
        Delivery.objects.using(bench.alias).update(dispatcher="celery", queue=IDLE_QUEUE)
        totals = _drain(bench)
    with celery_app.connection_for_write() as connection:
        waiting = connection.default_channel.queue_declare(IDLE_QUEUE, passive=True).message_count
    purge(IDLE_QUEUE)
    bench.expect("tasks sent", totals.sent, bench.n)
    bench.expect("tasks in the queue", waiting, bench.n)
    sent = Delivery.objects.using(bench.alias).filter(state=DeliveryState.DISPATCHED)
    bench.expect("deliveries sent", sent.count(), bench.n)

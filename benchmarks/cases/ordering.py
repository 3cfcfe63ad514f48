"""Per-key ordering end to end: the same publishes to an unordered and to an ordered receiver.

Every case publishes ``OrderPlaced`` with an ordering key, one event per ``atomic()``, so the
unordered case writes the same event rows and differs from the ordered ones only in its
receiver: its deliveries carry no key, take no number and never wait.

- *many keys*: ``KEYS`` keys in turn, or N/10 of them when N is smaller than ten times
  ``KEYS``: each key has ten events or more in every run, QUICK ones included.
- *one hot key*: every event has the same key. With the sync dispatcher each delivery has
  settled before the next publish, so nothing waits; with Celery every delivery after the
  first waits for the one ahead of it, and the worker runs the key's deliveries one at a
  time: its rate is the latency of one hand-over, not a throughput to hold against the
  unordered one, and it publishes at most ``HOT_CELERY_EVENTS`` events.

The ordered cases are compared with the unordered case of the same dispatcher; the unordered
ones with the existing floors (B4, B6), to place them in the rest of the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import transaction
from django.test import override_settings

from django_domain_events import publish
from django_domain_events.declaration.registry import registry
from django_domain_events.models import Delivery, DeliveryState

from ..benchapp.events import TOTAL, OrderPlaced
from ..benchapp.noops import noop_receivers
from ..harness import Bench, Target, rate_case
from .celery import WORK_QUEUE, _wait, _Worker, redis_unavailable

KEYS = 1_000
"""Ordering keys of the many-keys cases, used in turn."""

HOT_CELERY_EVENTS = 2_000
"""At most this many events in the Celery hot-key case, which runs them one after another."""

OVERHEAD = Target(postgresql=0.8, sqlite=0.8)
"""Ordered with many keys against unordered: at most 20% fewer deliveries per second."""


def many_keys(n: int) -> Callable[[int], str]:
    """The key of the ``i``-th of ``n`` events: ``KEYS`` keys in turn, each used ten times
    or more."""
    count = max(1, min(KEYS, n // 10))
    return lambda i: f"order-{i % count}"


def hot_key(n: int) -> Callable[[int], str]:
    """One key for every event."""
    return lambda i: "order-hot"


def _publish_keyed(bench: Bench, key_of: Callable[[int], str], count: int) -> None:
    for i in range(count):
        with transaction.atomic(using=bench.alias):
            publish(OrderPlaced(order_id=i, total=TOTAL), using=bench.alias, ordering_key=key_of(i))


def _delivered(bench: Bench) -> int:
    return Delivery.objects.using(bench.alias).filter(state=DeliveryState.DELIVERED).count()


# The sync dispatcher ---------------------------------------------------------------------------


def _sync(bench: Bench, key_of: Callable[[int], str], *, ordered: bool) -> None:
    with noop_receivers(1, dispatcher="sync", ordered=ordered), bench.timed():
        _publish_keyed(bench, key_of, bench.n)
    bench.expect("deliveries delivered", _delivered(bench), bench.n)


@rate_case(
    "ord-sync-unordered",
    "ordering, sync end to end: keyed events, unordered receiver",
    floor="B4",
    unit="deliveries/s",
)
def sync_unordered(bench: Bench) -> None:
    _sync(bench, many_keys(bench.n), ordered=False)


@rate_case(
    "ord-sync-keys",
    f"ordering, sync end to end: ordered receiver, {KEYS:,} keys in turn",
    floor="ord-sync-unordered",
    target=OVERHEAD,
    unit="deliveries/s",
)
def sync_ordered_many_keys(bench: Bench) -> None:
    _sync(bench, many_keys(bench.n), ordered=True)


@rate_case(
    "ord-sync-hot",
    "ordering, sync end to end: ordered receiver, one hot key",
    floor="ord-sync-unordered",
    unit="deliveries/s",
)
def sync_ordered_hot_key(bench: Bench) -> None:
    _sync(bench, hot_key(bench.n), ordered=True)


# Celery, with the run's worker -----------------------------------------------------------------


@contextmanager
def _celery_receiver(*, ordered: bool) -> Iterator[None]:
    from ..benchapp.tasks import register_celery_receiver

    with registry.isolated(), override_settings(DOMAIN_EVENTS={"DISPATCHER": "deferred"}):
        register_celery_receiver(WORK_QUEUE, ordered=ordered)
        yield


def _celery(
    bench: Bench, key_of: Callable[[int], str], *, ordered: bool, count: int | None = None
) -> int:
    count = bench.n if count is None else count
    _Worker.ensure()
    with _celery_receiver(ordered=ordered), bench.timed():
        _publish_keyed(bench, key_of, count)
        _wait("the deliveries", lambda: _delivered(bench) >= count)
    bench.expect("deliveries delivered", _delivered(bench), count)
    return count


@rate_case(
    "ord-celery-unordered",
    "ordering, Celery end to end: keyed events, unordered receiver",
    floor="B6",
    unit="deliveries/s",
    needs=redis_unavailable,
)
def celery_unordered(bench: Bench) -> int:
    return _celery(bench, many_keys(bench.n), ordered=False)


@rate_case(
    "ord-celery-keys",
    f"ordering, Celery end to end: ordered receiver, {KEYS:,} keys in turn",
    floor="ord-celery-unordered",
    target=OVERHEAD,
    unit="deliveries/s",
    needs=redis_unavailable,
)
def celery_ordered_many_keys(bench: Bench) -> int:
    return _celery(bench, many_keys(bench.n), ordered=True)


@rate_case(
    "ord-celery-hot",
    "ordering, Celery end to end: ordered receiver, one hot key (one at a time)",
    floor="ord-celery-unordered",
    unit="deliveries/s",
    needs=redis_unavailable,
)
def celery_ordered_hot_key(bench: Bench) -> int:
    # One delivery at a time: the rate does not depend on how many, so a full run need not
    # spend minutes on it.
    return _celery(bench, hot_key(bench.n), ordered=True, count=min(bench.n, HOT_CELERY_EVENTS))

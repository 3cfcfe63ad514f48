"""The raw floors: the same rows written by hand with the ORM, measured beside our cases.

Each writes ``RawEvent`` rows shaped like outbox events (UUID key, JSON payload, an indexed type
and time), so a ratio to a floor is what the outbox costs over code an app would write anyway.
"""

from __future__ import annotations

import uuid
from functools import partial

from django.db import transaction
from django.utils import timezone

from ..benchapp.events import RAW_EVENT_TYPE, raw_payload
from ..benchapp.models import RawEvent
from ..harness import Bench, rate_case


def _noop() -> None:
    pass


def _count(bench: Bench) -> int:
    return RawEvent.objects.using(bench.alias).count()


@rate_case("B1", "raw create(), one per atomic()", unit="rows/s")
def raw_create(bench: Bench) -> None:
    rows = RawEvent.objects.using(bench.alias)
    with bench.timed():
        for i in range(bench.n):
            with transaction.atomic(using=bench.alias):
                rows.create(
                    event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=timezone.now()
                )
    bench.expect("B1 rows", _count(bench), bench.n)


@rate_case("B2", "raw bulk_create(N), one transaction", floor="B1", unit="rows/s")
def raw_bulk_create(bench: Bench) -> None:
    rows = RawEvent.objects.using(bench.alias)
    with bench.timed(), transaction.atomic(using=bench.alias):
        now = timezone.now()
        rows.bulk_create(
            RawEvent(event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=now)
            for i in range(bench.n)
        )
    bench.expect("B2 rows", _count(bench), bench.n)


@rate_case("B3", "B1 + a no-op on_commit", floor="B1", unit="rows/s")
def raw_create_on_commit(bench: Bench) -> None:
    rows = RawEvent.objects.using(bench.alias)
    with bench.timed():
        for i in range(bench.n):
            with transaction.atomic(using=bench.alias):
                rows.create(
                    event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=timezone.now()
                )
                transaction.on_commit(_noop, using=bench.alias)
    bench.expect("B3 rows", _count(bench), bench.n)


def _handle(alias: str, pk: uuid.UUID) -> None:
    # What a hand-written after-commit handler does: its work, then marking the row handled,
    # together in one transaction.
    with transaction.atomic(using=alias):
        _noop()
        RawEvent.objects.using(alias).filter(pk=pk).update(handled_at=timezone.now())


@rate_case(
    "B4", "B1 + on_commit handler: no-op, UPDATE the row (2nd commit)", floor="B1", unit="rows/s"
)
def raw_create_handled_on_commit(bench: Bench) -> None:
    rows = RawEvent.objects.using(bench.alias)
    with bench.timed():
        for i in range(bench.n):
            with transaction.atomic(using=bench.alias):
                row = rows.create(
                    event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=timezone.now()
                )
                transaction.on_commit(partial(_handle, bench.alias, row.pk), using=bench.alias)
    handled = rows.filter(handled_at__isnull=False).count()
    bench.expect("B4 rows handled", handled, bench.n)

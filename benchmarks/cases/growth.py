"""What a full outbox costs: publishing and relaying beside settled events already stored, and
the relay's claim plan over many rows.

- publish-stored: publish-1 (``publish()`` per ``atomic()``, one deferred receiver) with 100 N
  settled events already stored (1,000,000 in a full run), against publish-1 on empty tables.
- relay-stored: relay-sync (one relay draining N owed sync deliveries) beside the same settled
  events, against relay-sync.
- claim-plan (PostgreSQL): the relay's real claim statement, captured as it runs, explained and
  run (``EXPLAIN (ANALYZE, BUFFERS)``, rolled back) over 10,000,000 settled deliveries (QUICK
  1,000,000) and 1,000 owed ones; the case fails on a sequential scan of an outbox table (from
  1,000,000 stored rows: over the few thousand of a smoke run a sequential scan is the right plan).

The settled rows are written by one ``INSERT … SELECT … generate_series`` per table (each event
delivered once to the cases' receiver; one in a thousand failed and waiting for a retry an hour
away, one in a thousand dead), then vacuumed and analysed, as autovacuum has long done to the
settled rows of a real outbox (left to do, its run over the fresh rows lands in the timed loop
and cost the rates 30%). Their ids and times lie in the last 30 days, before anything a case
publishes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import connections, transaction
from django.test import override_settings

from django_domain_events import publish_many, use_dispatcher
from django_domain_events.delivery.relay import Relay
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

from ..benchapp.events import RAW_EVENT_TYPE, TOTAL, OrderPlaced, publish_orders
from ..benchapp.noops import noop_1, noop_receivers
from ..harness import (
    DASH,
    Bench,
    BenchmarkError,
    Case,
    Cells,
    Config,
    Sample,
    Target,
    rate_case,
    register,
)

STORED_FACTOR = 100
"""Settled events stored before the rate cases: 100 N, 1,000,000 in a full run."""
PLAN_ROWS = {"full": 10_000_000, "quick": 1_000_000, "smoke": 10_000}
"""Settled deliveries under the claim plan."""
PLAN_OWED = 1_000
STRICT_FROM = 1_000_000
"""Stored deliveries from which a sequential scan fails the plan case. Over the few thousand
rows of a smoke run, reading the table beats an index, and PostgreSQL rightly does."""
BATCH = 1_000
OUTBOX_TABLES = ("domain_events_outbox_event", "domain_events_delivery")

# A time-ordered UUID (version 7 layout) from a timestamp expression and a row number.
_UUID7 = (
    "(lpad(to_hex((extract(epoch FROM {ts}) * 1000)::bigint), 12, '0') || '7' "
    "|| substr(md5(({seed})::text || 'a'), 1, 3) || '8' "
    "|| substr(md5(({seed})::text || 'b'), 1, 15))::uuid"
)

_FILL_POSTGRES = f"""
WITH events AS (
    INSERT INTO domain_events_outbox_event
        (id, event_type, version, payload, occurred_at, correlation_id, causation_id,
         ordering_key, headers)
    SELECT {_UUID7.format(ts="t.at", seed="t.i")}, %(event_type)s, 1,
           jsonb_build_object('order_id', t.i, 'total', '12.50'), t.at,
           {_UUID7.format(ts="t.at", seed="t.i")}::text, NULL, '', '{{}}'::jsonb
    FROM (
        SELECT i, now() - interval '30 days' * (1 - i::float8 / %(rows)s) - interval '1 hour'
               AS at
        FROM generate_series(1, %(rows)s) AS i
    ) AS t
    RETURNING id, occurred_at AS at, (payload ->> 'order_id')::bigint AS i
)
INSERT INTO domain_events_delivery
    (id, event_id, receiver, dispatcher, queue, state, attempts, next_attempt_at, created_at,
     dispatched_at, last_attempt_at, delivered_at, last_error, traceback, task_id, claimed_by,
     claimed_until, ordering_key, ordering_seq)
SELECT {_UUID7.format(ts="e.at", seed="-e.i")}, e.id, %(receiver)s, 'sync', '',
       CASE e.i %% 1000 WHEN 0 THEN 'failed' WHEN 1 THEN 'dead' ELSE 'delivered' END,
       CASE e.i %% 1000 WHEN 0 THEN 2 WHEN 1 THEN 5 ELSE 1 END,
       CASE e.i %% 1000 WHEN 0 THEN now() + interval '1 hour' END,
       e.at, e.at, e.at + interval '1 second',
       CASE WHEN e.i %% 1000 > 1 THEN e.at + interval '1 second' END,
       CASE WHEN e.i %% 1000 < 2 THEN 'ConnectionError: refused' ELSE '' END,
       '', '', '', NULL, '', NULL
FROM events AS e
"""


def _receiver_name() -> str:
    return f"{noop_1.__module__}.{noop_1.__qualname__}"


def store_settled(alias: str, rows: int, *, checkpoint: bool = True) -> None:
    """Store ``rows`` settled events, each with its one delivery, and analyse the tables.

    On PostgreSQL in one set-based statement, then ``VACUUM (ANALYZE)``; elsewhere with
    ``bulk_create()`` in batches, then ``ANALYZE``."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            params = {"rows": rows, "event_type": RAW_EVENT_TYPE, "receiver": _receiver_name()}
            cursor.execute(_FILL_POSTGRES, params)
            # What autovacuum did long ago to the settled rows of a real outbox. Left to do
            # now, its insert-triggered run over the fresh rows lands in the timed loop.
            for table in OUTBOX_TABLES:
                cursor.execute(f"VACUUM (ANALYZE) {table}")
            if checkpoint:
                cursor.execute("CHECKPOINT")
            return
    _store_settled_in_batches(alias, rows)
    with connection.cursor() as cursor:
        for table in OUTBOX_TABLES:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def _store_settled_in_batches(alias: str, rows: int) -> None:
    import datetime as dt

    from django.utils import timezone

    from django_domain_events.ids import uuid7

    events, deliveries = OutboxEvent.objects.using(alias), Delivery.objects.using(alias)
    receiver = _receiver_name()
    at = timezone.now() - dt.timedelta(days=30)
    for start in range(0, rows, BATCH):
        batch = [
            OutboxEvent(
                id=uuid7(),
                event_type=RAW_EVENT_TYPE,
                payload={"order_id": i, "total": "12.50"},
                occurred_at=at,
                correlation_id=f"settled-{i}",
            )
            for i in range(start, min(rows, start + BATCH))
        ]
        events.bulk_create(batch)
        deliveries.bulk_create(
            Delivery(
                event_id=event.id,
                receiver=receiver,
                dispatcher="sync",
                state=DeliveryState.DELIVERED,
                attempts=1,
                created_at=at,
                dispatched_at=at,
                last_attempt_at=at,
                delivered_at=at,
            )
            for event in batch
        )


def _stored(bench: Bench) -> int:
    rows = bench.n * STORED_FACTOR
    store_settled(bench.alias, rows)
    return rows


@rate_case(
    "publish-stored",
    "publish-1 beside 100 N settled events already stored",
    floor="publish-1",
    target=Target(postgresql=0.95, sqlite=0.95),
)
def publish_beside_stored(bench: Bench) -> None:
    alias = bench.alias
    stored = _stored(bench)
    with noop_receivers(1, dispatcher="deferred"), bench.timed():
        publish_orders(bench.n, alias)
    bench.expect("events", OutboxEvent.objects.using(alias).count(), stored + bench.n)
    bench.expect("deliveries", Delivery.objects.using(alias).count(), stored + bench.n)


def _owed(alias: str, n: int) -> None:
    with use_dispatcher("deferred"):
        for start in range(0, n, BATCH):
            with transaction.atomic(using=alias):
                publish_many(
                    [
                        OrderPlaced(order_id=i, total=TOTAL)
                        for i in range(start, min(n, start + BATCH))
                    ],
                    using=alias,
                )


@rate_case(
    "relay-stored",
    "relay-sync beside 100 N settled events already stored",
    floor="relay-sync",
    target=Target(postgresql=0.95, sqlite=0.95),
    unit="deliveries/s",
)
def relay_beside_stored(bench: Bench) -> None:
    alias = bench.alias
    _stored(bench)
    delivered = Delivery.objects.using(alias).filter(state=DeliveryState.DELIVERED)
    settled = delivered.count()
    owed = Delivery.objects.using(alias).filter(state=DeliveryState.PENDING)
    with noop_receivers(1, dispatcher="sync"):
        _owed(alias, bench.n)
        owed.update(dispatcher="sync")
        with override_settings(DOMAIN_EVENTS={"RELAY_GRACE": 0, "RELAY_BATCH_SIZE": 500}):
            relay = Relay(using=alias)
            with bench.timed():
                relay.run_pass()
    bench.expect("deliveries delivered", delivered.count() - settled, bench.n)


# The claim plan -----------------------------------------------------------------------------


class _Captured(Exception):
    def __init__(self, sql: str, params: Any) -> None:
        super().__init__(sql)
        self.sql, self.params = sql, params


def claim_statement(relay: Relay) -> tuple[str, Any]:
    """The SQL and parameters of ``relay``'s next claim, as it would send them, unsent."""

    def capture(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any):
        raise _Captured(sql, params)

    with connections[relay.alias].execute_wrapper(capture):
        try:
            relay.claim_batch()
        except _Captured as captured:
            return captured.sql, captured.params
    raise BenchmarkError("The relay claimed a batch without a statement to capture.")


def _scans_of(plan: Sequence[str]) -> list[str]:
    return [line.strip() for line in plan if re.search(r"\b(Seq|Index|Index Only|Bitmap) ", line)]


@dataclass(frozen=True)
class PlanCase(Case):
    """The relay's claim explained over many stored rows: fails on a sequential scan of an
    outbox table. Runs once per database, PostgreSQL only."""

    key: str
    title: str
    repeated: ClassVar[bool] = False

    def not_on(self, vendor: str) -> str | None:
        if vendor == "postgresql":
            return None
        return "the claim plan is measured on PostgreSQL, where relays run side by side"

    def measure(self, alias: str, config: Config) -> Sample:
        size = "smoke" if config.smoke else "quick" if config.quick else "full"
        rows = PLAN_ROWS[size]
        started = time.perf_counter()
        store_settled(alias, rows, checkpoint=not config.smoke)
        filled = time.perf_counter() - started
        owed = min(PLAN_OWED, rows)
        with noop_receivers(1, dispatcher="deferred"):
            _owed(alias, owed)
            with connections[alias].cursor() as cursor:
                cursor.execute("ANALYZE domain_events_delivery")
            with override_settings(DOMAIN_EVENTS={"RELAY_BATCH_SIZE": 500}):
                sql, params = claim_statement(Relay(using=alias))
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plan = [row[0] for row in cursor.fetchall()]
            transaction.set_rollback(True, using=alias)
        text = "\n".join(plan)
        sequential = [
            line.strip()
            for line in plan
            if any(f"Seq Scan on {table}" in line for table in OUTBOX_TABLES)
        ]
        if sequential and rows >= STRICT_FROM:
            raise BenchmarkError(
                f"The relay's claim reads an outbox table sequentially over {rows:,} stored "
                f"deliveries ({'; '.join(sequential)}): an index is missing or not usable.\n{text}"
            )
        found = re.search(r"Execution Time: ([\d.]+) ms", text)
        return {
            "rows": rows,
            "owed": owed,
            "fill_seconds": round(filled, 1),
            "execution_ms": float(found.group(1)) if found else None,
            "sequential": sequential,
            "scans": _scans_of(plan),
            "plan": plan,
            "statement": sql,
        }

    def describe(self, sample: Sample) -> str:
        scans = "sequential scan" if sample["sequential"] else "no sequential scan"
        return (
            f"claim of {sample['owed']:,} owed over {sample['rows']:,} stored: "
            f"{sample['execution_ms']} ms, {scans} (filled in {sample['fill_seconds']} s)"
        )

    def summarise(self, samples: Mapping[str, Sequence[Sample]], vendor: str) -> dict[str, Any]:
        [sample] = samples[self.key]
        return {"kind": "plan", **sample, "met": not sample["sequential"]}

    def cells(self, summary: Mapping[str, Any]) -> Cells:
        indexes = sorted(set(re.findall(r"using (\w+)", " ".join(summary["scans"]))))
        return Cells(
            ours=(
                f"{summary['execution_ms']} ms over {summary['rows']:,} stored {DASH} "
                f"{', '.join(indexes) or 'no index'}"
            ),
            target="no Seq Scan",
            met="yes" if summary["met"] else "**no**",
        )


register(
    PlanCase(
        "claim-plan",
        "the relay's claim statement, EXPLAIN ANALYZE over 10,000,000 settled deliveries",
    )
)

"""The outbox admin at scale: server time of its pages over 1,000,000 events and 3,000,000
deliveries on PostgreSQL.

```console
.venvs/py311-dj52/bin/python benchmarks/admin_rows.py              # seed once, then measure
.venvs/py311-dj52/bin/python benchmarks/admin_rows.py --reseed     # throw the rows away first
.venvs/py311-dj52/bin/python benchmarks/admin_rows.py --events 100000 --reps 3
```

The rows live in a database of their own (``dde_admin_bench`` on 127.0.0.1:5432, user
``postgres``; ``DDE_ADMIN_BENCH_DB`` names another) and are kept between runs: seeding takes a few
minutes, measuring seconds. They are written by ``INSERT ... SELECT`` over ``generate_series``:
events spread over the last 30 days, three deliveries each, nearly all delivered, with failed,
dead, pending and dispatched ones among them as a busy production outbox has.

Each page is fetched through Django's test ``Client`` as a signed-in superuser, once to warm up
and then ``--reps`` times; the table gives the median and the slowest server time and the number
of SQL queries. The run prints the table and writes ``benchmarks/results/admin-<date>.md``.
Targets: changelists under 300 ms, the dashboard under 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE = os.environ.get("DDE_ADMIN_BENCH_DB", "dde_admin_bench")

RECEIVERS = 20
EVENT_TYPES = 12
DAYS = 30


def configure() -> None:
    """Django settings of this script: the admin over one PostgreSQL database."""
    from django.conf import settings

    settings.configure(
        SECRET_KEY="django-domain-events-admin-benchmark-not-a-secret",
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.admin",
            "django_domain_events",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": "5432",
                "USER": "postgres",
                "NAME": DATABASE,
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        ROOT_URLCONF="benchmarks.admin_rows",
        STATIC_URL="/static/",
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        DOMAIN_EVENTS={"DISPATCHER": "deferred"},
    )
    import django

    django.setup()


def _urlpatterns() -> list[object]:
    from django.contrib import admin
    from django.urls import path

    return [path("admin/", admin.site.urls)]


def __getattr__(name: str) -> object:
    # This module is also the ROOT_URLCONF; its URLs exist only once Django is set up.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


def create_database() -> None:
    """Create the benchmark database if it is missing, then migrate it."""
    import psycopg
    from django.core.management import call_command
    from psycopg import sql

    with psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    call_command("migrate", verbosity=0, interactive=False)


# A time-ordered UUID (version 7 layout) for a timestamp expression and a row number.
_UUID7 = (
    "(lpad(to_hex((extract(epoch FROM {ts}) * 1000)::bigint), 12, '0') || '7' "
    "|| substr(md5(({seed})::text || 'a'), 1, 3) || '8' "
    "|| substr(md5(({seed})::text || 'b'), 1, 15)"
    ")::uuid"
)

SEED_EVENTS = f"""
INSERT INTO domain_events_outbox_event
    (id, event_type, version, payload, occurred_at, correlation_id, causation_id,
     ordering_key, headers)
SELECT {_UUID7.format(ts="t.at", seed="t.i")},
       'shop.event_' || (mod(t.i, {EVENT_TYPES})),
       1 + (mod(t.i, 7) = 0)::int,
       jsonb_build_object('order_id', t.i, 'total', (mod(t.i, 997))::text || '.50',
                          'customer', 'customer' || (mod(t.i, 5000)) || '@example.com'),
       t.at,
       CASE WHEN mod(t.i, 4) = 0 THEN 'corr-' || (t.i / 4) ELSE md5(t.i::text) END,
       CASE WHEN mod(t.i, 10) = 0 THEN {_UUID7.format(ts="t.at", seed="(t.i - 1)")} END,
       '',
       '{{}}'::jsonb
FROM (
    SELECT i, now() - interval '{DAYS} days' * (1 - i::float8 / %(events)s) AS at
    FROM generate_series(1, %(events)s) AS i
) AS t
"""

# Three deliveries per event; the state is drawn from a hash of the row so it is stable:
# 96.5% delivered, 1% failed, 1% dead, 1% pending, 0.5% dispatched.
SEED_DELIVERIES = f"""
INSERT INTO domain_events_delivery
    (id, event_id, receiver, dispatcher, queue, state, attempts, next_attempt_at, created_at,
     dispatched_at, last_attempt_at, delivered_at, last_error, traceback, task_id, claimed_by,
     claimed_until, ordering_key)
SELECT {_UUID7.format(ts="d.at", seed="d.n")},
       d.event_id,
       'shop.handlers.receiver_' || ((d.type_n * 3 + d.k) % {RECEIVERS}),
       CASE WHEN d.k = 2 THEN 'celery' ELSE 'sync' END,
       '',
       d.state,
       CASE d.state WHEN 'pending' THEN 0 WHEN 'dispatched' THEN 0 WHEN 'dead' THEN 5
                    WHEN 'failed' THEN 2 ELSE 1 END,
       CASE WHEN d.state IN ('pending', 'failed') THEN d.at + interval '2 minutes' END,
       d.at,
       CASE WHEN d.state <> 'pending' THEN d.at END,
       CASE WHEN d.state IN ('delivered', 'failed', 'dead') THEN d.at + interval '1 second' END,
       CASE WHEN d.state = 'delivered' THEN d.at + interval '1 second' END,
       CASE WHEN d.state IN ('failed', 'dead')
            THEN 'ConnectionError: upstream refused the connection (row ' || d.n || ')'
            ELSE '' END,
       CASE WHEN d.state IN ('failed', 'dead')
            THEN 'Traceback (most recent call last):' || chr(10)
                 || '  File "shop/handlers.py", line 42, in push' || chr(10)
                 || 'ConnectionError: upstream refused the connection'
            ELSE '' END,
       CASE WHEN d.k = 2 THEN md5(d.n::text || 'task')::uuid::text ELSE '' END,
       '',
       NULL,
       ''
FROM (
    SELECT e.id AS event_id, e.occurred_at AS at, k,
           substr(e.event_type, 12)::int AS type_n,
           row_number() OVER () AS n,
           CASE
               WHEN h < 9650 THEN 'delivered'
               WHEN h < 9750 THEN 'failed'
               WHEN h < 9850 THEN 'dead'
               WHEN h < 9950 THEN 'pending'
               ELSE 'dispatched'
           END AS state
    FROM domain_events_outbox_event AS e
    CROSS JOIN generate_series(0, 2) AS k
    CROSS JOIN LATERAL (
        SELECT ('x' || substr(md5(e.id::text || k), 1, 8))::bit(32)::int & 2147483647 AS raw
    ) AS r
    CROSS JOIN LATERAL (SELECT r.raw % 10000 AS h) AS hh
) AS d
"""


def seed(events: int, *, reseed: bool) -> None:
    """Fill the outbox with ``events`` events and three deliveries each, unless it holds them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM domain_events_outbox_event")
        present = cursor.fetchone()[0]
        if present == events and not reseed:
            print(f"{present:,} events already seeded in {DATABASE}; reusing them.")
            return
        started = time.perf_counter()
        # CASCADE: the attempts (and any other table referring to these) go with them.
        cursor.execute("TRUNCATE domain_events_delivery, domain_events_outbox_event CASCADE")
        cursor.execute(SEED_EVENTS, {"events": events})
        print(f"  {events:,} events in {time.perf_counter() - started:.0f} s", flush=True)
        cursor.execute(SEED_DELIVERIES)
        print(f"  {events * 3:,} deliveries in {time.perf_counter() - started:.0f} s", flush=True)
    connection.close()
    # VACUUM cannot run in a transaction; it also sets the visibility map for index-only scans.
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname=DATABASE, autocommit=True
    ) as conn:
        conn.execute("VACUUM ANALYZE domain_events_outbox_event")
        conn.execute("VACUUM ANALYZE domain_events_delivery")
    print(f"  vacuumed and analyzed in {time.perf_counter() - started:.0f} s", flush=True)


def pages() -> list[tuple[str, str]]:
    """(label, URL) of every page measured."""
    from django.db import connection
    from django.urls import reverse

    from django_domain_events.models import Delivery, OutboxEvent

    events = reverse("admin:django_domain_events_outboxevent_changelist")
    deliveries = reverse("admin:django_domain_events_delivery_changelist")
    with connection.cursor() as cursor:
        # A row from the middle of the table, found without scanning it.
        cursor.execute(
            "SELECT id, correlation_id FROM domain_events_outbox_event "
            "WHERE occurred_at < now() - interval '15 days' ORDER BY occurred_at DESC LIMIT 1"
        )
        event_id, correlation_id = cursor.fetchone()
    delivery = Delivery.objects.filter(event_id=event_id).order_by("id").first()
    assert delivery is not None
    task = Delivery.objects.filter(event_id=event_id, dispatcher="celery").first()
    day = OutboxEvent.objects.get(pk=event_id).occurred_at
    return [
        ("events: default", events),
        ("events: type filter", f"{events}?event_type=shop.event_3"),
        ("events: delivery state dead", f"{events}?delivery_state=dead"),
        ("events: delivery state pending", f"{events}?delivery_state=pending"),
        (
            "events: a day (date hierarchy)",
            f"{events}?occurred_at__day={day.day}"
            f"&occurred_at__month={day.month}&occurred_at__year={day.year}",
        ),
        (
            "events: a month (date hierarchy)",
            f"{events}?occurred_at__month={day.month}&occurred_at__year={day.year}",
        ),
        ("events: search by event id", f"{events}?q={event_id}"),
        ("events: search by correlation id", f"{events}?q={correlation_id}"),
        ("events: page 50", f"{events}?p=50"),
        (
            "event: change page",
            reverse("admin:django_domain_events_outboxevent_change", args=(event_id,)),
        ),
        ("deliveries: default", deliveries),
        ("deliveries: state dead", f"{deliveries}?state__exact=dead"),
        ("deliveries: state delivered", f"{deliveries}?state__exact=delivered"),
        ("deliveries: receiver", f"{deliveries}?receiver=shop.handlers.receiver_7"),
        ("deliveries: dispatcher celery", f"{deliveries}?dispatcher=celery"),
        ("deliveries: search by event id", f"{deliveries}?q={event_id}"),
        ("deliveries: search by task id", f"{deliveries}?q={task.task_id if task else 'x'}"),
        (
            "delivery: change page",
            reverse("admin:django_domain_events_delivery_change", args=(delivery.pk,)),
        ),
        ("dashboard", reverse("admin:django_domain_events_outboxevent_dashboard")),
    ]


def measure(reps: int) -> list[tuple[str, float, float, int, int]]:
    """Fetch every page ``reps`` times; (label, median ms, max ms, queries, status) each."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    client = Client()
    client.force_login(user)
    rows = []
    for label, url in pages():
        response = client.get(url)  # warm-up: caches, the connection, the planner
        timings = []
        for _ in range(reps):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
        rows.append(
            (label, statistics.median(timings), max(timings), len(queries), response.status_code)
        )
        print(f"  {label:<36} {statistics.median(timings):8.1f} ms", flush=True)
    return rows


def table(rows: list[tuple[str, float, float, int, int]], events: int) -> str:
    """The results as a Markdown table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    lines = [
        f"# Admin pages over {events:,} events and {events * 3:,} deliveries",
        "",
        f"{dt.date.today().isoformat()}, PostgreSQL {server}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores. Server time through Django's test Client (no network, no "
        f"browser), median and slowest of the repetitions after one warm-up.",
        "",
        "| page | median ms | max ms | queries | status | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, median, slowest, queries, status in rows:
        target = 1000 if label == "dashboard" else 300
        verdict = "ok" if median < target else f"over {target} ms"
        lines.append(
            f"| {label} | {median:.1f} | {slowest:.1f} | {queries} | {status} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to seed")
    parser.add_argument("--reps", type=int, default=5, help="timed fetches of each page")
    parser.add_argument("--reseed", action="store_true", help="delete and seed the rows again")
    parser.add_argument("--seed-only", action="store_true", help="seed, measure nothing")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="results folder"
    )
    options = parser.parse_args()

    configure()
    create_database()
    seed(options.events, reseed=options.reseed)
    if options.seed_only:
        return
    rows = measure(options.reps)
    report = table(rows, options.events)
    print()
    print(report)
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"admin-{dt.date.today().isoformat()}.md"
    path.write_text(report)
    print(f"Written to {path}")


if __name__ == "__main__":
    main()

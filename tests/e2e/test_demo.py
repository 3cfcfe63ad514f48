"""The demo project end to end: migrate and seed a fresh database in real processes, then read
what they left in it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2] / "testproject"


def manage(database: Path, *args: str) -> str:
    """Run ``testproject/manage.py`` against ``database``; return its output, failing on error."""
    env = dict(os.environ)
    # pytest-django exports the suite's settings module; the demo must use its own.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["DEMO_DATABASE_PATH"] = str(database)
    env["DOMAIN_EVENTS_DISPATCHER"] = "sync"
    result = subprocess.run(
        [sys.executable, "-W", "error", "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} exited {result.returncode}:\n{output}"
    )
    return output


def query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute(sql).fetchall()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh demo database, migrated and seeded once; and the seed command's output."""
    database = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    manage(database, "migrate", "--noinput")
    return database, manage(database, "seed_demo")


@pytest.mark.e2e
def test_seed_demo_fills_the_outbox_with_delivered_failed_and_dead_deliveries(
    seeded: tuple[Path, str],
) -> None:
    database, output = seeded

    assert "Username: admin" in output
    assert "Password: admin" in output
    assert "http://127.0.0.1:8000/admin/" in output
    assert query(database, "SELECT COUNT(*) FROM domain_events_outbox_event")[0][0] > 0
    states = dict(
        query(database, "SELECT state, COUNT(*) FROM domain_events_delivery GROUP BY state")
    )
    assert states.get("delivered", 0) > 0
    assert states.get("failed", 0) > 0
    assert states.get("dead", 0) > 0
    # The receipt requests were published by a receiver of PaymentReceived: each names that
    # event as its cause and shares its correlation id.
    chains = query(
        database,
        """
        SELECT cause.event_type, effect.correlation_id = cause.correlation_id
        FROM domain_events_outbox_event AS effect
        LEFT JOIN domain_events_outbox_event AS cause ON cause.id = effect.causation_id
        WHERE effect.event_type = 'shop.receipt_requested'
        """,
    )
    assert chains
    assert set(chains) == {("shop.PaymentReceived", 1)}
    # The async receiver is on the "deferred" dispatcher: the catch-up pass ran the deliveries
    # of the orders placed before it (their writes committed, one warehouse mail each); those of
    # the orders placed since wait, pending, for the relay.
    warehouse_mails = query(
        database,
        "SELECT COUNT(*) FROM shop_emaillog "
        "WHERE \"to\" = 'warehouse@shop.example' AND subject LIKE 'Pick and pack %'",
    )[0][0]
    left_for_the_relay = query(
        database,
        "SELECT COUNT(*) FROM domain_events_delivery "
        "WHERE receiver = 'shop.handlers.notify_warehouse' AND state = 'pending'",
    )[0][0]
    assert warehouse_mails > 0
    assert left_for_the_relay > 0
    orders = query(database, "SELECT COUNT(*) FROM shop_order")[0][0]
    assert warehouse_mails + left_for_the_relay == orders


@pytest.mark.e2e
def test_seed_demo_runs_again_and_resets_the_password(
    seeded: tuple[Path, str], tmp_path: Path
) -> None:
    database = tmp_path / "again.sqlite3"
    shutil.copyfile(seeded[0], database)
    orders_before = query(database, "SELECT COUNT(*) FROM shop_order")[0][0]

    output = manage(database, "seed_demo", "--password", "second-secret")

    assert "Password: second-secret" in output
    assert query(database, "SELECT COUNT(*) FROM shop_order")[0][0] > orders_before
    assert query(database, "SELECT username, is_superuser FROM auth_user") == [("admin", 1)]
    manage(
        database,
        "shell",
        "-c",
        "from django.contrib.auth import authenticate; "
        "assert authenticate(username='admin', password='second-secret')",
    )


@pytest.mark.e2e
def test_the_demo_catalogue_matches_the_one_it_keeps_and_lists_its_events(
    tmp_path: Path,
) -> None:
    database = tmp_path / "catalogue.sqlite3"

    checked = manage(database, "events_catalogue", "--check", "events_catalogue.json")
    listed = manage(database, "events_catalogue", "--event-type", "shop.*")
    asyncapi = manage(database, "events_catalogue", "--format", "asyncapi")

    assert "No breaking change against events_catalogue.json." in checked
    assert "shop.OrderPlaced (domain event, version 1, shop.events.OrderPlaced)" in listed
    assert "  Published from: shop.services\n" in listed
    assert "shop.handlers.notify_warehouse: dispatcher deferred" in listed
    assert "shop.newsletter_signup (named event: no class, fields not declared)" in listed
    assert '"address": "shop.PaymentSettled"' in asyncapi
    assert '"shop.OrderPlaced"' not in asyncapi


@pytest.mark.e2e
def test_erase_sensitive_erases_one_customer_s_email_in_the_demo(
    seeded: tuple[Path, str], tmp_path: Path
) -> None:
    database = tmp_path / "erased.sqlite3"
    shutil.copyfile(seeded[0], database)
    emails = """
        SELECT json_extract(payload, '$.email') FROM domain_events_outbox_event
        WHERE event_type = 'shop.newsletter_signup' ORDER BY id
    """
    before = [email for (email,) in query(database, emails)]

    output = manage(database, "erase_sensitive", "--subject", "guido@example.com")

    assert "Erased 1 values in 1 events (shop.newsletter_signup: 1 events, 1 values)" in output
    after = [email for (email,) in query(database, emails)]
    assert after == ["[erased]" if email == "guido@example.com" else email for email in before]
    assert "linus@example.com" in after
    assert query(
        database,
        "SELECT COUNT(*) FROM domain_events_outbox_event "
        "WHERE json_extract(headers, '$.erased_at') IS NOT NULL",
    ) == [(1,)]

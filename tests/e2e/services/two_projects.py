"""Two Django projects as real processes on one real broker: the demo shop (``testproject/``)
publishes ``shop.PaymentSettled`` and its relay sends it; the accounting service
(``consumerproject/``) consumes it into its ledger through its inbox.

Each project has a database of its own, SQLite files or, under ``DOMAIN_EVENTS_TEST_DB=
postgres``, PostgreSQL databases, migrated once per module and copied for every test. The
broker is a test parameter (``BROKERS``): each entry isolates the test run on the broker (a
RabbitMQ vhost, Redis streams of its own), gives the projects its URL and transport options,
and can put raw bytes on the queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from django.utils import timezone

from django_domain_events.integration.messages import Message, to_structured
from tests.conftest import require_service
from tests.processes import ROOT, WorkerProcess, wait_until
from tests.tcp_proxy import TCPProxy

DESTINATION = "accounting"
"""The destination the shop routes ``shop.PaymentSettled`` to (testproject/settings.py)."""
QUEUE = "accounting.ledger"
"""The accounting service's queue (consumerproject/settings.py)."""
ROUTE = f"broker:default:{DESTINATION}:shop.PaymentSettled"
"""The name of the shop's route receiver, which its broker deliveries carry."""
CONSUMER = "ledger.receivers.book_payment"
"""The name of the accounting service's consumer, which its inbox rows carry."""
TOTALS = re.compile(r"Consumer done: (\d+) messages \(([^)]*)\)")


class Broker(Protocol):
    """What the tests need of a broker: isolation, a URL, raw messages and what is queued."""

    name: str
    options: dict[str, Any]
    """The transport's ``OPTIONS`` in both projects."""
    host: str
    port: int

    def create(self) -> None:
        """Make this run's isolated space on the broker (or skip the test)."""

    def delete(self) -> None:
        """Remove it, and everything in it."""

    def url(self, port: int) -> str:
        """The URL the projects use, through ``port`` (a proxy's, or the broker's own)."""

    def put(self, routing_key: str, headers: dict[str, Any], body: bytes) -> None:
        """Put one message on the shop's destination, as bytes, confirmed by the broker."""

    def queued(self) -> int | None:
        """Messages in the accounting service's queue (None if it does not exist yet)."""

    def delete_queue(self) -> None:
        """Delete that queue, so that what a failed test left on it reaches no other test."""


class RabbitMQBroker:
    """The local RabbitMQ, in a vhost of this run's own (``rabbitmqctl``), deleted after it."""

    name = "rabbitmq"
    host = "127.0.0.1"
    port = 5672

    def __init__(self) -> None:
        self.vhost = f"dde-two-projects-{uuid.uuid4().hex[:10]}"
        self.options: dict[str, Any] = {}

    def _ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    def create(self) -> None:
        require_service("RabbitMQ", self.host, self.port, "service rabbitmq-server start")
        if shutil.which("rabbitmqctl") is None:
            pytest.skip("rabbitmqctl is not on PATH: apt-get install rabbitmq-server")
        self._ctl("add_vhost", self.vhost)
        self._ctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    def delete(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._ctl("delete_vhost", self.vhost)

    def url(self, port: int) -> str:
        return f"amqp://guest:guest@{self.host}:{port}/{self.vhost}"

    def put(self, routing_key: str, headers: dict[str, Any], body: bytes) -> None:
        from kombu import Connection, Exchange, Producer

        headers = dict(headers)
        content_type = headers.pop("content-type", "application/octet-stream")
        url = self.url(self.port)
        with Connection(url, transport_options={"confirm_publish": True}) as connection:
            exchange = Exchange(DESTINATION, type="topic", durable=True)
            producer = Producer(connection.default_channel, exchange=exchange)
            producer.publish(
                body,
                routing_key=routing_key,
                headers=headers,
                content_type=content_type,
                content_encoding="utf-8",
                delivery_mode=2,
                mandatory=True,
                retry=False,
            )

    def queued(self) -> int | None:
        from amqp.exceptions import NotFound
        from kombu import Connection

        with Connection(self.url(self.port)) as connection:
            try:
                declared = connection.default_channel.queue_declare(QUEUE, passive=True)
            except NotFound:
                return None
            return int(declared.message_count)

    def delete_queue(self) -> None:
        from kombu import Connection

        with Connection(self.url(self.port)) as connection:
            connection.default_channel.queue_delete(QUEUE)


class RedisStreamsBroker:
    """The local Redis, with streams of this run's own (a ``stream_prefix``), deleted after
    it. A dead consumer's entries are taken over after 2 s instead of a minute."""

    name = "redis_streams"
    host = "127.0.0.1"
    port = 6379

    def __init__(self) -> None:
        self.prefix = f"dde-two-projects-{uuid.uuid4().hex[:10]}:"
        self.options = {"stream_prefix": self.prefix, "claim_idle": 2.0}
        self.stream = f"{self.prefix}{DESTINATION}"

    def _client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url(self.port))

    def create(self) -> None:
        require_service("Redis", self.host, self.port, "redis-server --daemonize yes")

    def delete(self) -> None:
        client = self._client()
        try:
            for key in client.scan_iter(f"{self.prefix}*"):
                client.delete(key)
        finally:
            client.close()

    def url(self, port: int) -> str:
        return f"redis://{self.host}:{port}/0"

    def put(self, routing_key: str, headers: dict[str, Any], body: bytes) -> None:
        client = self._client()
        try:
            client.xadd(self.stream, {**headers, "routing_key": routing_key, "body": body})
        finally:
            client.close()

    def queued(self) -> int | None:
        import redis

        client = self._client()
        try:
            groups = client.xinfo_groups(self.stream)
        except redis.ResponseError:
            return None
        finally:
            client.close()
        for group in groups:
            if group["name"] in (QUEUE, QUEUE.encode()):
                return int(group.get("lag") or 0) + int(group["pending"])
        return None

    def delete_queue(self) -> None:
        self.delete()


BROKERS = [
    pytest.param(RabbitMQBroker, id="rabbitmq"),
    pytest.param(RedisStreamsBroker, id="redis_streams"),
]
"""The brokers every test runs on: add a transport's ``Broker`` here to prove it too."""


def on_postgres() -> bool:
    return os.environ.get("DOMAIN_EVENTS_TEST_DB") == "postgres"


class Database:
    """One project's database, SQLite file or PostgreSQL database, read with plain SQL."""

    def __init__(self, env_name: str, location: str) -> None:
        self.env_name = env_name
        """The project's environment variable that names it."""
        self.location = location

    @property
    def env(self) -> dict[str, str]:
        return {self.env_name: self.location}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if not on_postgres():
            with contextlib.closing(sqlite3.connect(self.location, timeout=30)) as database:
                return database.execute(sql).fetchall()
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", user="postgres", dbname=self.location, autocommit=True
        ) as database:
            return database.execute(sql).fetchall()  # type: ignore[arg-type]

    def value(self, sql: str) -> Any:
        return self.rows(sql)[0][0]


def _postgres(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as database:
        database.execute(sql)  # type: ignore[arg-type]


@dataclass
class Templates:
    """Both projects' databases migrated once, for each test to copy."""

    shop: str
    accounting: str
    made: list[str]

    def copy(self, tmp_path: Path) -> tuple[Database, Database]:
        """The shop's and the accounting service's databases for one test."""
        if not on_postgres():
            shutil.copy(self.shop, tmp_path / "shop.sqlite3")
            shutil.copy(self.accounting, tmp_path / "accounting.sqlite3")
            return (
                Database("DEMO_DATABASE_PATH", str(tmp_path / "shop.sqlite3")),
                Database("ACCOUNTING_DATABASE_PATH", str(tmp_path / "accounting.sqlite3")),
            )
        tag = uuid.uuid4().hex[:8]
        shop, accounting = f"{self.shop}_{tag}", f"{self.accounting}_{tag}"
        for name, template in ((shop, self.shop), (accounting, self.accounting)):
            _postgres(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            self.made.append(name)
        return Database("DEMO_POSTGRES_NAME", shop), Database(
            "ACCOUNTING_POSTGRES_NAME", accounting
        )

    def drop(self) -> None:
        for name in reversed(self.made):
            with contextlib.suppress(Exception):
                _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def project_env(**extra: str) -> dict[str, str]:
    """The environment of a project's process: its manage.py picks its settings."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["DOMAIN_EVENTS_DISPATCHER"] = "sync"
    env.update(extra)
    return env


def manage(project: str, *args: str, env: dict[str, str]) -> str:
    """Run ``<project>/manage.py`` to its end; its output, failing the test if it fails."""
    result = subprocess.run(
        [sys.executable, f"{project}/manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{project}/manage.py {' '.join(args)}:\n{output}"
    return output


@contextlib.contextmanager
def migrated_templates(directory: Path) -> Iterator[Templates]:
    """Migrate each project's database once; drop what was made on PostgreSQL afterwards."""
    if on_postgres():
        require_service("PostgreSQL", "127.0.0.1", 5432, "service postgresql start")
        tag = uuid.uuid4().hex[:8]
        made = [f"dde_two_shop_{tag}", f"dde_two_accounting_{tag}"]
        for name in made:
            _postgres(f'CREATE DATABASE "{name}"')
        templates = Templates(made[0], made[1], list(made))
        env = {"DEMO_POSTGRES_NAME": made[0], "ACCOUNTING_POSTGRES_NAME": made[1]}
    else:
        templates = Templates(
            str(directory / "shop.sqlite3"), str(directory / "accounting.sqlite3"), []
        )
        env = {
            "DEMO_DATABASE_PATH": templates.shop,
            "ACCOUNTING_DATABASE_PATH": templates.accounting,
        }
    try:
        manage("testproject", "migrate", "--noinput", "-v", "0", env=project_env(**env))
        manage("consumerproject", "migrate", "--noinput", "-v", "0", env=project_env(**env))
        yield templates
    finally:
        templates.drop()


class Process(WorkerProcess):
    """A ``manage.py`` command of one project running in the background, its output kept."""

    def __init__(self, directory: Path, name: str, project: str, *args: str) -> None:
        super().__init__(directory, name)
        self.project = project
        self.args = args

    @property
    def output_path(self) -> Path:
        return self.directory / f"{self.name}-{self.starts}.out"

    def start(self, env: dict[str, str]) -> None:
        self.starts += 1
        command = [sys.executable, f"{self.project}/manage.py", *self.args]
        self.spawn(command, env, self.output_path)

    def output(self) -> str:
        parts = []
        for path in sorted(self.directory.glob(f"{self.name}-*.out")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> int:
        """SIGTERM (the clean stop both commands document), wait for the exit; its status."""
        assert self.process is not None
        process = self.process
        self.stop_with(signal.SIGTERM)
        return int(process.returncode)


def payment_settled(order_id: int) -> tuple[dict[str, str], bytes]:
    """A ``shop.PaymentSettled`` message at version 1 on the wire, as the shop sends it."""
    message = Message(
        id=str(uuid.uuid4()),
        source="/shop",
        type="shop.PaymentSettled",
        time=timezone.now(),
        data=json.dumps({"order_id": order_id, "amount": "12.25", "currency": "EUR"}).encode(),
        extensions={"dataversion": "1"},
    )
    return to_structured(message)


class LedgerLock:
    """A write lock on the accounting service's ledger, held from another connection until
    ``release()``: a booking started meanwhile waits inside its transaction."""

    def __init__(self, accounting: Database) -> None:
        if on_postgres():
            import psycopg

            self._connection: Any = psycopg.connect(
                host="127.0.0.1", user="postgres", dbname=accounting.location
            )
            self._connection.execute("LOCK TABLE ledger_ledgerentry IN EXCLUSIVE MODE")
        else:
            self._connection = sqlite3.connect(accounting.location, isolation_level=None)
            self._connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self._connection.rollback()
        self._connection.close()


@dataclass
class Figures:
    """What crossed from the shop to the accounting service, counted in both databases."""

    published: int
    sent: int
    consumed: int
    booked: int
    duplicate_effects: int
    lost: int
    stuck: int


def figures(shop: Database, accounting: Database, broker: Broker) -> Figures:
    """Count, in both databases and on the broker: every event published, every delivery
    sent, every message consumed and booked; booked more than once; published but never
    booked; and what is left anywhere unsettled."""
    published = {
        str(uuid.UUID(str(row[0])))
        for row in shop.rows(
            "SELECT id FROM domain_events_outbox_event WHERE event_type = 'shop.PaymentSettled'"
        )
    }
    booked = [
        str(uuid.UUID(str(row[0])))
        for row in accounting.rows("SELECT event_id FROM ledger_ledgerentry")
    ]
    sent = shop.value(
        f"SELECT COUNT(*) FROM domain_events_delivery WHERE receiver = '{ROUTE}' "
        "AND state = 'delivered'"
    )
    unsent = shop.value(
        f"SELECT COUNT(*) FROM domain_events_delivery WHERE receiver = '{ROUTE}' "
        "AND state <> 'delivered'"
    )
    consumed = accounting.value(
        f"SELECT COUNT(*) FROM domain_events_inbox WHERE receiver = '{CONSUMER}' "
        "AND outcome = 'processed'"
    )
    unsettled = accounting.value(
        f"SELECT COUNT(*) FROM domain_events_inbox WHERE receiver = '{CONSUMER}' "
        "AND outcome <> 'processed'"
    )
    return Figures(
        published=len(published),
        sent=int(sent),
        consumed=int(consumed),
        booked=len(booked),
        duplicate_effects=len(booked) - len(set(booked)),
        lost=len(published - set(booked)),
        stuck=int(unsent) + int(unsettled) + (broker.queued() or 0),
    )


def booked(accounting: Database) -> int:
    return int(accounting.value("SELECT COUNT(*) FROM ledger_ledgerentry"))


def consumer_totals(process: Process) -> list[str]:
    """The "Consumer done" totals each start of ``process`` printed."""
    return [
        f"{count} messages ({outcomes})" for count, outcomes in TOTALS.findall(process.output())
    ]


def wait_for_queue(broker: Broker, report: Any) -> None:
    """Wait until the accounting service's queue is declared (its consumer is bound)."""
    wait_until(
        lambda: broker.queued() is not None,
        "the accounting service's queue to be declared",
        timeout=60,
        interval=0.2,
        report=report,
    )


@dataclass
class Services:
    """The two projects of one test: their databases, a proxy in front of the broker, and
    their processes (all stopped after the test)."""

    broker: Broker
    shop: Database
    accounting: Database
    proxy: TCPProxy
    directory: Path
    processes: list[Process] = field(default_factory=list)

    def shop_env(self, *, through_proxy: bool = True) -> dict[str, str]:
        port = self.proxy.port if through_proxy else self.broker.port
        return project_env(
            DEMO_BROKER_URL=self.broker.url(port),
            DEMO_TRANSPORT_OPTIONS=json.dumps(self.broker.options),
            **self.shop.env,
        )

    def accounting_env(self, *, through_proxy: bool = True, **extra: str) -> dict[str, str]:
        port = self.proxy.port if through_proxy else self.broker.port
        return project_env(
            ACCOUNTING_BROKER_URL=self.broker.url(port),
            ACCOUNTING_TRANSPORT_OPTIONS=json.dumps(self.broker.options),
            **self.accounting.env,
            **extra,
        )

    def process(self, name: str, project: str, *args: str) -> Process:
        made = Process(self.directory, name, project, *args)
        self.processes.append(made)
        return made

    def consumer(self, *args: str) -> Process:
        return self.process("consumer", "consumerproject", "consume_events", *args)

    def relay(self) -> Process:
        return self.process("relay", "testproject", "relay_events", "--interval", "0.2")

    def publisher(self, count: int, *args: str) -> Process:
        return self.process(
            "publisher", "testproject", "publish_payments", "--count", str(count), *args
        )

    def report(self) -> str:
        counted = figures(self.shop, self.accounting, self.broker)
        return "\n".join([str(counted), *(process.output() for process in self.processes)])

    def wait_booked(self, count: int) -> None:
        wait_until(
            lambda: booked(self.accounting) == count,
            f"{count} ledger entries",
            timeout=120,
            interval=0.2,
            report=self.report,
        )

    def route_deliveries(self, where: str) -> int:
        return int(
            self.shop.value(
                "SELECT COUNT(*) FROM domain_events_delivery "
                f"WHERE receiver = '{ROUTE}' AND {where}"
            )
        )


def all_of(count: int) -> Figures:
    return Figures(
        published=count,
        sent=count,
        consumed=count,
        booked=count,
        duplicate_effects=0,
        lost=0,
        stuck=0,
    )

"""``scripts/demo.py`` as a newcomer runs it: set up, serve with a relay (and a Celery worker
with ``--celery``), then stop every process it started on one Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.e2e.services.two_projects import RabbitMQBroker
from tests.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"^demo: started the ([\w-]+) \(pid (\d+)\)$", re.MULTILINE)

# Each demo sets up, serves and stops; its waits below, not this backstop, say what was slow.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# What the demo prints once it has set up, before it starts its processes.
SET_UP = "Press Ctrl-C to stop."


def free_ports() -> int:
    """A port free now whose next port is free too: ``--consumer`` serves the accounting
    service on the next one (another test's server may hold any given port)."""
    while True:
        with closing(socket.socket()) as first, closing(socket.socket()) as second:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                second.bind(("127.0.0.1", port + 1))
            except (OSError, OverflowError):  # taken, or past 65535
                continue
            return port


def admin_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=5) as page:
            return bool(page.status == 200)
    except OSError:
        return False


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def group_gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


# The relay's report of a batch in which it delivered something.
RELAY_DELIVERED = r"Batch: .*delivered [1-9]"


def run_demo_until_sigint(
    tmp_path: Path,
    *options: str,
    awaiting: str = RELAY_DELIVERED,
    extra_env: dict[str, str] | None = None,
) -> tuple[dict[str, int], str]:
    """Start the demo on a free port and a fresh database, with this interpreter; once the
    admin answers and its output matches ``awaiting``, send SIGINT as Ctrl-C does. Returns the
    children it started and its output, once every one of them is gone."""
    port = free_ports()
    output = tmp_path / "demo.out"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["DEMO_DATABASE_PATH"] = str(tmp_path / "demo.sqlite3")
    env["PYTHONPATH"] = str(ROOT)
    # A queue of this test's own: no other demo's worker takes its tasks.
    env["DEMO_CELERY_QUEUE"] = f"shop-demo-{uuid.uuid4().hex[:8]}"
    env.update(extra_env or {})
    with output.open("wb") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "scripts/demo.py",
                "--python",
                sys.executable,
                "--port",
                str(port),
                *options,
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    children: dict[str, int] = {}
    try:
        # Setting up (migrating and seeding one or two projects) is timed apart from serving:
        # on a loaded machine it alone can take minutes.
        wait_until(
            lambda: SET_UP in output.read_text(),
            "the demo to finish setting up",
            timeout=360,
            report=output.read_text,
        )
        wait_until(
            lambda: admin_answers(port) or demo.poll() is not None,
            "the demo's admin",
            timeout=180,
            report=output.read_text,
        )
        if demo.poll() is not None:
            pytest.fail(
                f"The demo exited with status {demo.returncode} before its admin answered:\n"
                f"{output.read_text()}"
            )
        wait_until(
            lambda: re.search(awaiting, output.read_text()),
            f"the demo's output to match {awaiting!r}",
            # The relay waits RELAY_GRACE after a commit, then for its poll, on a loaded machine.
            timeout=180,
            report=output.read_text,
        )
        children = {name: int(pid) for name, pid in STARTED.findall(output.read_text())}
        group = os.getpgid(children["server"])
        demo.send_signal(signal.SIGINT)
        status = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        # A failed test must not leave the demo's children running: they are in a group of
        # their own, led by the first one started.
        started = STARTED.findall(output.read_text())
        if started and not group_gone(int(started[0][1])):
            os.killpg(int(started[0][1]), signal.SIGKILL)
    text = output.read_text()
    assert status == 0, text
    for name, pid in children.items():
        wait_until(lambda pid=pid: gone(pid), f"the demo's {name} (pid {pid}) to be gone")
    wait_until(lambda: group_gone(group), f"every process in the demo's group {group} to be gone")
    return children, text


def test_the_demo_serves_with_a_relay_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    # It returns once the relay has delivered what the seeding left to it.
    children, output = run_demo_until_sigint(tmp_path)

    assert set(children) == {"server", "relay"}
    assert "demo: stopped the server, the relay" in output
    # pip's log stays out of the way: a demo run on an existing interpreter installs nothing.
    assert "Collecting" not in output


def test_the_celery_demo_runs_deliveries_in_a_worker_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    require_service("redis", "127.0.0.1", 6379, "redis-server --daemonize yes")

    children, output = run_demo_until_sigint(
        tmp_path, "--celery", awaiting=r"deliver\[\S+\] succeeded in"
    )

    assert set(children) == {"server", "relay", "worker"}
    assert re.search(r"Task django_domain_events\.deliver\[\S+\] succeeded in", output)
    with closing(sqlite3.connect(tmp_path / "demo.sqlite3")) as database:
        rows = database.execute("SELECT DISTINCT dispatcher FROM domain_events_delivery")
        # Every receiver on Celery, but the one the shop leaves to the relay.
        assert {dispatcher for (dispatcher,) in rows} == {"celery", "deferred"}


def test_the_consumer_demo_sends_payments_to_the_accounting_service_and_ctrl_c_stops_it(
    tmp_path: Path,
) -> None:
    broker = RabbitMQBroker()
    broker.create()
    try:
        children, output = run_demo_until_sigint(
            tmp_path,
            "--consumer",
            awaiting=r"Booked order #\d+",
            extra_env={
                "DEMO_BROKER_URL": broker.url(broker.port),
                "ACCOUNTING_DATABASE_PATH": str(tmp_path / "accounting.sqlite3"),
            },
        )
    finally:
        broker.delete()

    assert set(children) == {"server", "relay", "accounting-server", "accounting-consumer"}
    assert "Accounting admin: Username: admin" in output
    with closing(sqlite3.connect(tmp_path / "demo.sqlite3")) as database:
        sent = {
            uuid.UUID(event_id)
            for (event_id,) in database.execute(
                "SELECT e.id FROM domain_events_outbox_event e JOIN domain_events_delivery d "
                "ON d.event_id = e.id WHERE d.receiver = ? AND d.state = 'delivered'",
                ("broker:default:accounting:shop.PaymentSettled",),
            )
        }
    with closing(sqlite3.connect(tmp_path / "accounting.sqlite3")) as database:
        booked = [
            uuid.UUID(event_id)
            for (event_id,) in database.execute("SELECT event_id FROM ledger_ledgerentry")
        ]
        inbox = database.execute(
            "SELECT receiver, outcome, COUNT(*) FROM domain_events_inbox GROUP BY 1, 2"
        ).fetchall()
    # What the accounting service booked, the shop sent, once each; its inbox shows each.
    assert booked
    assert set(booked) <= sent
    assert len(set(booked)) == len(booked)
    assert inbox == [("ledger.receivers.book_payment", "processed", len(booked))]

"""Child processes that do a case's work side by side: N relays, N publishers, N raw writers.

A run starts its children once, on first use (``python -m benchmarks.parallel``, through
``benchmarks.children``, so they end with the run), and keeps them for every case and both
databases: starting Python and Django in each, for each case, would cost more than the small
runs take. They talk to the run over a Unix socket, one JSON line per message. For each job a
child first prepares (its receiver, its relay, its rows, its connection), says it is ready,
then waits for the word to go, so the clock runs only over the work: from the moment the last
child is told to go to the moment the last one says it is done.

The roles, each on the job's share of the work (``index`` of ``count``):

- ``publish``: ``publish()`` of one event per ``atomic()`` to one deferred receiver, with the
  job's ``options`` (``DOMAIN_EVENTS`` keys) if it has any;
- ``insert``: the raw floor of that, ``RawEvent.objects.create()`` per ``atomic()`` (B1);
- ``relay``: ``Relay.run_pass()``, what ``relay_events --once`` runs, on owed deliveries to the
  receiver ``RECORDED``, which records each run: the run checks no delivery ran twice;
- ``update``: the raw floor of that, an UPDATE per existing row in its own ``atomic()`` (B7).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RECORDED = "benchapp.recorded"
"""Name of the receiver the relay cases publish to, in the run and in the children."""

MAX_CHILDREN = 4
WAIT_SECONDS = 600
"""How long the run waits for a child's answer before it gives up on it."""

_ran: list[int] = []
"""In a child: the ``order_id`` of each event its ``RECORDED`` receiver ran for."""


def record_run(event: Any) -> None:
    """The relay cases' receiver: remembers that it ran for this event, and does nothing else.
    Kept outside the database on purpose: a run that was rolled back counts too."""
    _ran.append(event.order_id)


# The run's side ---------------------------------------------------------------------------


class ChildError(Exception):
    """A child failed its job, or stopped answering."""


class _Child:
    def __init__(self, index: int, process: Any, sock: socket.socket) -> None:
        self.index = index
        self.process = process
        self.sock = sock
        self.lines = sock.makefile("r", encoding="utf-8")

    def send(self, message: Mapping[str, Any]) -> None:
        self.sock.sendall((json.dumps(message) + "\n").encode())

    def receive(self) -> dict[str, Any]:
        line = self.lines.readline()
        if not line:
            raise ChildError(f"Child process {self.index} closed its connection (it exited).")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise ChildError(f"Child process {self.index} failed:\n{message['error']}")
        return message


class Children:
    """The run's child processes, started on first use and kept until the run ends."""

    _dir: Path | None = None
    _listener: socket.socket | None = None
    _children: list[_Child] = []

    @classmethod
    def _ensure(cls, count: int) -> list[_Child]:
        from . import children

        if cls._listener is None:
            cls._dir = Path(tempfile.mkdtemp(prefix="dde-bench-parallel-"))
            cls._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            cls._listener.bind(str(cls._dir / "socket"))
            cls._listener.listen(MAX_CHILDREN)
            cls._listener.settimeout(WAIT_SECONDS)
        if len(cls._children) < count:
            # All of them at once: each start is mostly importing Django, which they overlap.
            command = [sys.executable, "-m", "benchmarks.parallel", str(cls._dir / "socket")]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            started = [children.start(command, env) for _ in range(len(cls._children), count)]
            for process in started:
                index = len(cls._children)
                try:
                    sock, _ = cls._listener.accept()
                except TimeoutError:
                    raise ChildError(
                        f"Child process {index} did not connect within {WAIT_SECONDS} s."
                    ) from None
                sock.settimeout(WAIT_SECONDS)
                cls._children.append(_Child(index, process, sock))
        return cls._children[:count]

    @classmethod
    def run(
        cls, role: str, alias: str, count: int, **job: Any
    ) -> tuple[float, list[dict[str, Any]]]:
        """Have ``count`` children do ``role`` on ``alias``, each its share of ``job``; return
        the seconds from the word to go to the last one done, and what each one reported."""
        if not 1 <= count <= MAX_CHILDREN:
            raise ValueError(f"{count} child processes asked for; from 1 to {MAX_CHILDREN}.")
        try:
            members = cls._ensure(MAX_CHILDREN)[:count]
            for child in members:
                child.send(
                    {"role": role, "alias": alias, "index": child.index, "count": count, **job}
                )
            for child in members:
                child.receive()  # ready
            started = time.perf_counter()
            for child in members:
                child.send({"go": True})
            reports = [child.receive() for child in members]
        except BaseException:
            # The others may be waiting for the word to go: start again from fresh children.
            cls.stop()
            raise
        return time.perf_counter() - started, reports

    @classmethod
    def stop(cls) -> None:
        """Close the connections (each child exits when its own closes) and stop them."""
        from . import children

        for child in cls._children:
            child.sock.close()
            children.stop(child.process)
        cls._children = []
        if cls._listener is not None:
            cls._listener.close()
            cls._listener = None


# The child's side -------------------------------------------------------------------------


def _share(items: list[Any], job: Mapping[str, Any]) -> list[Any]:
    return items[job["index"] :: job["count"]]


@contextmanager
def _recorded_relay(alias: str) -> Iterator[Any]:
    from django.test import override_settings

    from django_domain_events import receiver
    from django_domain_events.declaration.registry import registry
    from django_domain_events.delivery.relay import Relay

    from .benchapp.events import OrderPlaced

    options = {"DISPATCHER": "deferred", "RELAY_BATCH_SIZE": 500}
    with registry.isolated(), override_settings(DOMAIN_EVENTS=options):
        receiver(OrderPlaced, name=RECORDED)(record_run)
        yield Relay(using=alias)


def _do(job: Mapping[str, Any], wait_for_go: Any) -> dict[str, Any]:
    from django.db import connections, transaction
    from django.utils import timezone

    from .benchapp.events import RAW_EVENT_TYPE, TOTAL, OrderPlaced, raw_payload
    from .benchapp.models import RawEvent
    from .benchapp.noops import noop_receivers

    alias, role = job["alias"], job["role"]
    connections[alias].ensure_connection()
    if role == "publish":
        from django_domain_events import publish

        order_ids = _share(list(range(job["n"])), job)
        with noop_receivers(1, dispatcher="deferred", options=job.get("options")):
            wait_for_go()
            for i in order_ids:
                with transaction.atomic(using=alias):
                    publish(OrderPlaced(order_id=i, total=TOTAL), using=alias)
        return {"done": len(order_ids)}
    if role == "insert":
        rows = RawEvent.objects.using(alias)
        order_ids = _share(list(range(job["n"])), job)
        wait_for_go()
        for i in order_ids:
            with transaction.atomic(using=alias):
                rows.create(
                    event_type=RAW_EVENT_TYPE, payload=raw_payload(i), occurred_at=timezone.now()
                )
        return {"done": len(order_ids)}
    if role == "update":
        rows = RawEvent.objects.using(alias)
        pks = _share(list(rows.order_by("pk").values_list("pk", flat=True)), job)
        wait_for_go()
        for pk in pks:
            with transaction.atomic(using=alias):
                rows.filter(pk=pk).update(handled_at=timezone.now())
        return {"done": len(pks)}
    if role == "relay":
        _ran.clear()
        with _recorded_relay(alias) as relay:
            wait_for_go()
            totals = relay.run_pass()
        return {"done": totals.delivered, "totals": totals.as_dict(), "ran": list(_ran)}
    raise ValueError(f"Unknown role {role!r}.")


def main(path: str) -> None:
    """A child: connect to the run, then do each job it sends until it closes the connection."""
    # Kept between jobs and passes, as a relay in production keeps its connection.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django
    from django.conf import settings

    for params in settings.DATABASES.values():
        if params:
            params["CONN_MAX_AGE"] = 60
    django.setup()
    from django.db import connections

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    lines = sock.makefile("r", encoding="utf-8")

    def send(message: Mapping[str, Any]) -> None:
        sock.sendall((json.dumps(message) + "\n").encode())

    def wait_for_go() -> None:
        send({"ready": True})
        if not lines.readline():
            raise SystemExit(0)

    try:
        for line in lines:
            try:
                report = _do(json.loads(line), wait_for_go)
            except SystemExit:
                raise
            except BaseException:
                send({"error": traceback.format_exc()})
                continue
            send(report)
    finally:
        connections.close_all()
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1])

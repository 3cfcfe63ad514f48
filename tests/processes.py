"""Real processes for the integration and end-to-end tests: waiting for what they do, the
environment they run in, and Celery workers started and stopped the way production does it.

Every wait polls with a deadline and, when it gives up, fails the test naming what it waited
for and showing what the caller's ``report`` says (a worker's log, where deliveries stand).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest
from django.db import connection, connections

ROOT = Path(__file__).resolve().parents[1]
"""The checkout: the working directory of the processes the tests start."""

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    what: str,
    *,
    timeout: float = 30,
    interval: float = 0.05,
    report: Callable[[], str] | None = None,
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns something true, and
    return that. After ``timeout`` seconds, fail the test: "Gave up after 30 s waiting for
    <what>.", followed by what ``report()`` returns then."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            details = f"\n{report()}" if report is not None else ""
            pytest.fail(f"Gave up after {timeout:g} s waiting for {what}.{details}")
        time.sleep(interval)


def process_env(settings: str = "tests.settings", **extra: str) -> dict[str, str]:
    """The environment of a process a test starts: Django settings module ``settings``, on the
    test's database server (pytest-django's database, which the connection names by now), with
    this checkout importable, and ``extra`` variables on top."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "DOMAIN_EVENTS_TEST_DB": "mariadb" if connection.vendor == "mysql" else "postgres",
        "DOMAIN_EVENTS_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "DOMAIN_EVENTS_TEST_DB_OTHER_NAME": str(connections["other"].settings_dict["NAME"]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **extra,
    }


class WorkerProcess:
    """A long-running process a test starts, in a session of its own so that ``kill()``
    reaches whatever it forks, with its output kept in ``directory``; ``starts`` counts its
    starts, so each can write its own log file."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def spawn(self, command: list[str], env: dict[str, str], output: Path) -> None:
        """Start ``command`` in the checkout with ``env``, its output written to ``output``."""
        with open(output, "wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the process and everything it forked, as the OOM killer or a lost host
        would."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop_with(self, signum: signal.Signals) -> None:
        """Send the process ``signum``, the signal its command documents for a clean stop,
        and kill it if it has not exited 10 seconds later."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self.kill()


class CeleryWorker(WorkerProcess):
    """A ``celery -A tests.celery_app worker`` process (prefork) consuming one queue of a
    broker, on the test database; its log is kept in ``directory``, one file per start."""

    def __init__(
        self,
        broker_url: str,
        queue: str,
        directory: Path,
        *,
        name: str = "worker",
        concurrency: int = 2,
        settings: str = "tests.settings",
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(directory, name)
        self.broker_url = broker_url
        self.queue = queue
        self.concurrency = concurrency
        self.settings = settings
        self.env = env or {}

    def launch(self, *, purge: bool = False) -> None:
        """Start the process, without waiting for it to consume (see ``ready()``); ``purge``
        drops what the queue holds first."""
        self.starts += 1
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "--pool=prefork",
            f"--concurrency={self.concurrency}",
            f"--queues={self.queue}",
            f"--hostname={self.name}-{self.starts}-{self.queue}@%h",
            "--loglevel=INFO",
            f"--logfile={self.directory / f'worker-{self.starts}.log'}",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
        if purge:
            command.append("--purge")
        env = process_env(
            self.settings,
            DOMAIN_EVENTS_TEST_BROKER_URL=self.broker_url,
            DOMAIN_EVENTS_TEST_CELERY_QUEUE=self.queue,
            **self.env,
        )
        self.spawn(command, env, self.directory / f"worker-{self.starts}.out")

    def ready(self) -> bool:
        """Whether the worker consumes its queue; fails the test, with the log, if the
        process has exited."""
        process = self.process
        assert process is not None, f"Celery worker {self.name} was never started"
        if process.poll() is not None:
            pytest.fail(
                f"Celery worker {self.name} exited with status {process.returncode}:\n{self.log()}"
            )
        return " ready." in self.log()

    def start(self, *, purge: bool = False) -> None:
        """Start the worker and wait until it consumes its queue."""
        self.launch(purge=purge)
        wait_until(self.ready, f"Celery worker {self.name} to start", timeout=60, report=self.log)

    def ask_to_stop(self) -> None:
        """Send the worker SIGQUIT (a cold shutdown, which on Redis still puts the tasks it
        reserved back in their queue) without waiting for it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGQUIT)

    def stop(self) -> None:
        """Stop the worker cleanly (see ``ask_to_stop()``), killing it if that takes more than
        10 seconds."""
        self.stop_with(signal.SIGQUIT)

    def log(self) -> str:
        """Everything the worker has written so far, in every start."""
        parts = []
        for path in sorted(self.directory.glob("worker-*.*")):
            parts.append(f"--- {self.name}: {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)


def stop_workers(workers: Iterable[CeleryWorker]) -> None:
    """Stop ``workers`` together: all are asked first, so none goes on working while another
    shuts down."""
    workers = list(workers)
    for worker in workers:
        worker.ask_to_stop()
    for worker in workers:
        worker.stop()

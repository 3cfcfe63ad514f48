"""Fixtures of the django.tasks integration tests: a queue of the test's own, the settings that
send the test's deliveries there through django-tasks-db's database backend, and real
``manage.py db_worker`` processes that take only that queue, on the test database."""

from __future__ import annotations

import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("django.tasks", reason="the django.tasks dispatcher needs Django 6")
pytest.importorskip(
    "django_tasks_db",
    reason='db_worker comes with django-tasks-db: pip install -e ".[test]" on Python 3.12+',
)

from django.test import override_settings

from tests.processes import WorkerProcess, process_env

BACKEND = "database"
"""The django-tasks-db backend of ``tests.settings.TASKS``."""


class DbWorker(WorkerProcess):
    """A ``manage.py db_worker`` process of django-tasks-db taking one queue of the database
    backend, with ``tests.tasks_settings``; its output is kept in ``directory``."""

    def __init__(self, queue: str, directory: Path, *, name: str = "worker") -> None:
        super().__init__(directory, name)
        self.queue = queue

    def start(self) -> None:
        """Start the process. Tasks wait in their table until it takes them, so there is
        nothing to wait for."""
        self.starts += 1
        command = [
            sys.executable,
            "-m",
            "django",
            "db_worker",
            f"--backend={BACKEND}",
            f"--queue-name={self.queue}",
            "--interval=0.05",
            "--no-startup-delay",
            "--no-reload",
            f"--worker-id={self.name}-{self.starts}-{uuid.uuid4().hex[:8]}",
        ]
        self.spawn(
            command,
            process_env("tests.tasks_settings"),
            self.directory / f"{self.name}-{self.starts}.out",
        )

    def stop(self) -> None:
        """Stop the worker as its command documents (SIGTERM: the task in hand finishes),
        killing it if that takes more than 10 seconds."""
        self.stop_with(signal.SIGTERM)

    def log(self) -> str:
        """Everything the worker has written so far, in every start."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')}"
            for path in sorted(self.directory.glob(f"{self.name}-*.out"))
        )


@pytest.fixture
def queue() -> str:
    return f"dde-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def tasks_settings(queue: str) -> Iterator[None]:
    """This process's deliveries go to the test's queue of the database backend, and its relay
    sends a retry as soon as it is due."""
    settings = {
        "TASKS_BACKEND": BACKEND,
        "TASKS_QUEUE": queue,
        "RETRY_BASE_DELAY": 0,
        "RETRY_MAX_DELAY": 0,
        "RELAY_GRACE": 0,
    }
    with override_settings(DOMAIN_EVENTS=settings):
        yield


@pytest.fixture
def workers(
    queue: str, tasks_settings: None, transactional_db: None, tmp_path: Path
) -> Iterator[list[DbWorker]]:
    """Two workers on the test's queue, not started; stopped after the test."""
    started = [DbWorker(queue, tmp_path, name=f"worker{n}") for n in (1, 2)]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()

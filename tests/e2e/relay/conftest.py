"""Fixtures of the relay's process tests: ``relay_events`` and publishers as real processes on
the test's PostgreSQL database, stopped with real signals."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_domain_events.declaration.registry import Registry

# A queue of the test's own, for the chaos test's Celery workers.
from tests.brokers import queue
from tests.processes import ROOT, process_env

from .receivers import register

__all__ = ["queue"]

SETTINGS = "tests.e2e.relay.settings"


class Process:
    """A Python process started in its own session, its output kept in a file."""

    def __init__(
        self, args: list[str], log: Path, domain_events: dict[str, Any], env: dict[str, str]
    ) -> None:
        self.log_path = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=process_env(
                    SETTINGS, DOMAIN_EVENTS_TEST_SETTINGS=json.dumps(domain_events), **env
                ),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, signum)

    def wait(self, timeout: float = 60) -> int:
        """Wait for the process to exit; fail the test with its output if it does not."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"Process {self.popen.args} did not exit:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL it, as the OOM killer would."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def totals(self) -> dict[str, int]:
        """The relay's totals, from its last line."""
        match = re.search(r"Totals: (.*)\.$", self.output(), re.MULTILINE)
        if match is None:
            pytest.fail(f"No totals in the relay's output:\n{self.output()}")
        return {
            name: int(value)
            for name, value in (part.rsplit(" ", 1) for part in match.group(1).split(", "))
        }


@pytest.fixture
def start(tmp_path: Path, transactional_db: None) -> Iterator[Callable[..., Process]]:
    """Start a process: ``start("relay_events", "--once", settings={...})`` runs a management
    command, ``start("-m", "module", ...)`` a module. Killed at the end of the test if still
    running."""
    started: list[Process] = []

    def run(
        *args: str, settings: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> Process:
        argv = list(args) if args[0] == "-m" else ["-m", "django", *args]
        log = tmp_path / f"process-{len(started)}.log"
        process = Process(argv, log, settings or {}, env or {})
        started.append(process)
        return process

    try:
        yield run
    finally:
        for process in started:
            process.signal(signal.SIGCONT)
            process.kill()


@pytest.fixture
def relay_receivers(receiver_registry: Registry) -> Registry:
    """This process's registry with the receivers the test processes have."""
    register()
    return receiver_registry

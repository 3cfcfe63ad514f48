"""A benchmark run leaves no worker behind, however it is stopped: the workers it starts end
with it, on SIGKILL (the kernel's parent-death signal), SIGTERM and SIGHUP (the run unwinds)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, wait_until

pytestmark = pytest.mark.e2e

RUN = """
import os, sys, time
from benchmarks import children

children.stop_with_the_run()
worker = children.start([sys.executable, "-c", "import time; time.sleep(600)"], os.environ)
print(worker.pid, flush=True)
time.sleep(600)
"""
"""A stand-in for ``benchmarks/run.py``: starts one worker as the Celery and django.tasks
cases do, prints its pid, and waits to be stopped."""


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def status(pid: int) -> str:
    """What Linux says of process ``pid``: its state and signal masks, or that it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return "gone"
    keep = ("State", "PPid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    return ", ".join(line for line in lines if line.startswith(keep))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_a_worker_ends_with_its_run(signum: signal.Signals) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", RUN], cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    ) as run:
        try:
            assert run.stdout is not None
            worker = int(run.stdout.readline())
            assert running(worker)
            run.send_signal(signum)
            wait_until(
                lambda: not running(worker),
                f"the worker {worker} to end after its run got {signum.name}",
                timeout=60,
                report=lambda: f"the run: {status(run.pid)}\nthe worker: {status(worker)}",
            )
        finally:
            run.kill()


def descendants(pid: int) -> dict[int, str]:
    """The live processes under ``pid`` (children, theirs, and so on), with their command
    lines."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    pending = [pid]
    while pending:
        parent = pending.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found and running(child):
                try:
                    command = (Path("/proc") / str(child) / "cmdline").read_bytes()
                except OSError:
                    continue
                found[child] = command.replace(b"\0", b" ").decode(errors="replace")
                pending.append(child)
    return found


RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"

BENCH_REDIS_URL = "redis://127.0.0.1:6379/12"

# A case of benchmarks/run.py, what shows its workers have all started (the command lines under
# the run), and the service it needs besides SQLite.
WORKER_CASES = {
    "relay-latency-poll": (lambda found: any("Relay(" in c for c in found.values()), None),
    "celery-latency": (
        # The worker and its pool of two.
        lambda found: sum("celery" in c for c in found.values()) >= 3,
        ("Redis", 6379, "redis-server --daemonize yes"),
    ),
    "broker-latency": (
        lambda found: (
            any("consume_events" in c for c in found.values())
            and any("Relay(" in c for c in found.values())
        ),
        ("RabbitMQ", 5672, "rabbitmq-server -detached"),
    ),
}


@pytest.mark.services
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("case", sorted(WORKER_CASES))
def test_a_killed_benchmark_run_leaves_no_worker(case: str, tmp_path: Path) -> None:
    from tests.conftest import require_service

    started, service = WORKER_CASES[case]
    if service is not None:
        require_service(service[0], "127.0.0.1", service[1], service[2])
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DJANGO_SETTINGS_MODULE", "QUICK")
    }
    env["PYTHONPATH"] = str(ROOT)
    env["DDE_BENCH_RABBITMQ_URL"] = os.environ.get("DOMAIN_EVENTS_TEST_RABBITMQ_URL", RABBITMQ_URL)
    # A Redis database of its own: a benchmark run elsewhere on the machine (the test command's
    # smoke run, database 14) would share the Celery queues and take or purge these tasks.
    env["DDE_BENCH_BROKER_URL"] = BENCH_REDIS_URL
    # Not --smoke: its few samples could end the case before the run is killed.
    command = [sys.executable, "benchmarks/run.py", "--db", "sqlite", "--case", case]
    with subprocess.Popen(
        [*command, "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    ) as run:
        seen: dict[int, str] = {}
        try:
            seen = wait_until(
                lambda: (found := descendants(run.pid)) and started(found) and found,
                f"the workers of {case} to start under the run",
                timeout=120,
                report=lambda: f"the run: {status(run.pid)}; under it: {descendants(run.pid)}",
            )
            seen.update(descendants(run.pid))
            assert run.poll() is None, f"the run ended ({run.returncode}) before it was killed"
            run.kill()
            assert run.wait(timeout=60) == -signal.SIGKILL
            wait_until(
                lambda: not any(running(pid) for pid in seen),
                f"every worker of the killed run to end: {seen}",
                timeout=90,
                report=lambda: "\n".join(
                    f"{pid}: {status(pid)}: {command[:100]}" for pid, command in seen.items()
                ),
            )
        finally:
            run.kill()
            for pid in seen:
                if running(pid):
                    os.kill(pid, signal.SIGKILL)
            if case == "broker-latency":
                delete_broker_names(seen, env["DDE_BENCH_RABBITMQ_URL"])


def delete_broker_names(seen: dict[int, str], url: str) -> None:
    """Delete the exchange and the queue a killed run of the broker cases declared (named in
    its processes' command lines): the run's own clean-up never ran."""
    from kombu import Connection

    names = set(re.findall(r"dde-bench-(?:raw-)?[0-9a-f]{8}", " ".join(seen.values())))
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)
            channel.exchange_delete(name)

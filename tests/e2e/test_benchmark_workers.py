"""A benchmark run leaves no worker behind, however it is stopped: the workers it starts end
with it, on SIGKILL (the kernel's parent-death signal), SIGTERM and SIGHUP (the run unwinds)."""

from __future__ import annotations

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

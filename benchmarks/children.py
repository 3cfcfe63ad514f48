"""The worker processes a benchmark run starts, and their end with the run, however it ends.

Each worker runs in a session of its own, so that stopping it reaches its pool processes too.
On Linux it also asks the kernel to send it SIGTERM when the run that started it dies
(``PR_SET_PDEATHSIG``), so even a run killed with SIGKILL leaves no worker behind; a run that
ends normally, on an exception, on Ctrl-C, SIGTERM or SIGHUP stops its workers itself.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""

_running: list[subprocess.Popen[bytes]] = []


def _end_with(parent: int) -> None:
    """In the child, before it runs its command: have the kernel send SIGTERM when the parent
    dies, and leave at once if it is already gone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def start(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    stdout: int | None = subprocess.DEVNULL,
    stderr: int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in the checkout with ``env``, its output discarded (or sent where
    ``stdout`` and ``stderr`` say, as for ``subprocess.Popen``), tied to this run: it is
    stopped when the run ends, and gets SIGTERM if the run dies."""
    parent = os.getpid()
    process = subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=lambda: _end_with(parent),
    )
    if not _running:
        atexit.register(stop_all)
    _running.append(process)
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Stop ``process`` and its session with SIGTERM (a worker's warm shutdown), killing them
    if that takes longer than ``timeout`` seconds."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    if process in _running:
        _running.remove(process)


def stop_all() -> None:
    """Stop every worker this run started and has not stopped yet."""
    for process in list(_running):
        stop(process)


def _exit_on(signum: int, frame: FrameType | None) -> None:
    stop_all()  # first, so that nothing the unwinding does can keep a worker running
    raise SystemExit(128 + signum)


def stop_with_the_run() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` in the main thread, so that a stopped run
    unwinds and stops its workers (Ctrl-C already raises ``KeyboardInterrupt``)."""
    signal.signal(signal.SIGTERM, _exit_on)
    signal.signal(signal.SIGHUP, _exit_on)

"""Receiver time limits: interrupting a receiver that runs longer than its ``timeout``.

Where a run can be interrupted:

- ``async def`` receivers, anywhere: the coroutine is cancelled at its next ``await``.
- Sync receivers in the main thread of a POSIX process (``relay_events``, a Celery worker's
  pool process, ``manage.py`` commands): ``SIGALRM`` raises ``ReceiverTimedOut`` inside the
  receiver, between two Python bytecodes, so a receiver blocked in C code (a socket read
  without a timeout, ``time.sleep``) is interrupted when that call returns to Python or is
  itself interrupted by the signal, as ``time.sleep`` and most blocking calls are.
- Celery workers also get the limit as the task's ``soft_time_limit`` (and a ``time_limit``
  a little later that kills the pool process, for code that swallows the exception).

Elsewhere (a sync receiver run in another thread, such as the ``"sync"`` dispatcher in a threaded
web server), a run cannot be interrupted: it runs to its end. On PostgreSQL its transaction is
then given ``idle_in_transaction_session_timeout``: if it sits idle past the limit, the server
ends it and releases the delivery's row lock, so the relay sends the delivery again after
``DISPATCH_TIMEOUT`` while the thread carries on. Elsewhere its delivery is not lost either: if
its process dies, the relay sends it again after ``DISPATCH_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Coroutine
from contextlib import AbstractContextManager
from typing import Any

from django.db import connections

from django_domain_events.exceptions import ReceiverTimedOut

_HAS_ITIMER = hasattr(signal, "setitimer")

_running: tuple[str, float] | None = None
"""The receiver and limit of the run the alarm is set for (runs with a limit happen only in
the main thread, one at a time)."""

_replaced: Any = signal.SIG_DFL
"""What ``SIGALRM`` did before ``_on_alarm()`` took it over: ``SIG_DFL`` or ``SIG_IGN``."""


def _on_alarm(signum: int, frame: Any) -> None:
    running = _running
    if running is not None:
        raise ReceiverTimedOut(*running)
    # Outside a run, do what SIGALRM did before this handler took it over.
    if _replaced is signal.SIG_IGN:
        return
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGALRM)


def can_interrupt() -> bool:
    """Whether a sync receiver run here can be interrupted: the main thread of a process with
    ``signal.setitimer``, whose ``SIGALRM`` nothing else uses right now (a run inside another
    run, through a dispatch on commit, leaves the alarm to the outer one)."""
    if not _HAS_ITIMER or threading.current_thread() is not threading.main_thread():
        return False
    handler = signal.getsignal(signal.SIGALRM)
    if handler is _on_alarm:
        return _running is None
    return handler in (signal.SIG_DFL, signal.SIG_IGN, None) and signal.getitimer(
        signal.ITIMER_REAL
    ) == (0.0, 0.0)


class _Alarm:
    """``interrupting_after()``'s context manager. The handler it installs stays for the next
    run (installing it costs two system calls a run); outside a run it does what ``SIGALRM``
    did before."""

    __slots__ = ("limit",)

    def __init__(self, seconds: float | None, receiver: str) -> None:
        self.limit = (receiver, seconds) if seconds is not None and can_interrupt() else None

    def __enter__(self) -> None:
        global _replaced, _running
        if self.limit is None:
            return
        if signal.getsignal(signal.SIGALRM) is not _on_alarm:
            previous = signal.signal(signal.SIGALRM, _on_alarm)
            _replaced = signal.SIG_IGN if previous is signal.SIG_IGN else signal.SIG_DFL
        _running = self.limit
        signal.setitimer(signal.ITIMER_REAL, self.limit[1])

    def __exit__(self, *exc_info: object) -> None:
        global _running
        if self.limit is None:
            return
        _running = None
        signal.setitimer(signal.ITIMER_REAL, 0)


def interrupting_after(seconds: float | None, receiver: str) -> AbstractContextManager[None]:
    """Raise ``ReceiverTimedOut`` in the block if it runs longer than ``seconds``, where
    ``can_interrupt()``; elsewhere, or with None, run the block without a limit."""
    return _Alarm(seconds, receiver)


async def awaited_within(
    seconds: float | None, receiver: str, run: Coroutine[Any, Any, Any]
) -> None:
    """Await ``run``, cancelling it with ``ReceiverTimedOut`` after ``seconds`` (None: no
    limit)."""
    if seconds is None:
        await run
        return
    try:
        await asyncio.wait_for(run, seconds)
    except TimeoutError:
        raise ReceiverTimedOut(receiver, seconds) from None


def explained(exc: Exception, receiver: str, seconds: float | None) -> Exception:
    """``exc`` as the failure to record: Celery's ``SoftTimeLimitExceeded`` (raised inside the
    receiver by a worker's soft time limit) and PostgreSQL's end of a transaction left idle
    past ``bound_idle_transaction()``'s limit become ``ReceiverTimedOut``, which says what
    happened; anything else is returned as it is."""
    # Matched by name: Celery is imported only where a Celery dispatcher is used.
    celery_limit = type(exc).__name__ == "SoftTimeLimitExceeded"
    if seconds is None or not (celery_limit or _idle_transaction_ended(exc)):
        return exc
    timed_out = ReceiverTimedOut(receiver, seconds).with_traceback(exc.__traceback__)
    timed_out.__cause__ = exc
    return timed_out


_IDLE_IN_TRANSACTION_TIMEOUT = "25P03"
"""PostgreSQL's SQLSTATE for a session ended by ``idle_in_transaction_session_timeout``."""


def _idle_transaction_ended(exc: BaseException) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == _IDLE_IN_TRANSACTION_TIMEOUT


def bound_idle_transaction(using: str, seconds: float | None) -> None:
    """Where a sync run cannot be interrupted, on PostgreSQL: let the server end the run's
    transaction (the one in progress) if it sits idle for ``seconds``, releasing the delivery's
    row lock."""
    if seconds is None or can_interrupt():
        return
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
            [str(max(int(seconds * 1000), 1))],
        )

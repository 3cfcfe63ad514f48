"""Stopping a long-running command cleanly: the first SIGTERM or SIGINT asks it to finish what
it holds, a second acts as it would have without it. Kept out of ``commands/`` so that Django
does not take it for a command."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_signals(
    stop: Callable[[], None], on_first: Callable[[], None] | None = None
) -> Iterator[None]:
    """Make SIGTERM and SIGINT call ``stop`` (then ``on_first``, if given); a second signal
    acts as it would have without this block. Only the main thread can set signal handlers,
    so elsewhere (a test calling the command in a thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum: int, frame: FrameType | None) -> None:
        stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if on_first is not None:
            on_first()

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

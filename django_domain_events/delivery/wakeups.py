"""A relay's wake-ups on PostgreSQL: a connection of its own that ``LISTEN``s on
``RELAY_CHANNEL``, so that the ``NOTIFY`` a committing publish sends ends the relay's wait.

The listening connection is separate from the Django connection that claims rows: it stays idle
in ``LISTEN`` between passes, outside any transaction. When it drops (the server restarted, an
administrator terminated it), the relay logs it, goes on polling every ``RELAY_INTERVAL``, and
reconnects with a growing delay; after a reconnect it runs a pass at once, since a notification
sent while it was away is lost.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import select
import time
from typing import TYPE_CHECKING, Any

from django.db import connections

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("django_domain_events")

RECONNECT_FIRST = 1.0
"""Seconds before the first attempt to reconnect a dropped listening connection."""
RECONNECT_MAX = 60.0
"""The longest wait between attempts to reconnect; each failed attempt doubles the wait."""

_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10}
"""libpq's TCP keepalives, unless the database's OPTIONS set them: a connection that the network
silently lost is noticed in about a minute instead of never, since it only ever reads."""


class Wake(enum.Enum):
    """What ended a relay's wait."""

    NOTIFIED = "notified"
    """A publish committed deliveries left to the relay."""
    POLL = "poll"
    """The interval went by: the safety net."""
    RECONNECTED = "reconnected"
    """The listening connection is back after a drop; a notification may have been missed."""
    STOPPED = "stopped"
    """``interrupt()`` was called (the relay is stopping)."""


def cannot_listen(alias: str) -> str | None:
    """Why a relay on ``alias`` cannot listen for notifications, or None if it can."""
    vendor = connections[alias].vendor
    if vendor != "postgresql":
        return f"the database {alias!r} is {vendor}, and only PostgreSQL has LISTEN/NOTIFY"
    driver = getattr(connections[alias], "Database", None)
    if getattr(driver, "__name__", "") != "psycopg":
        return "listening needs psycopg 3 (pip install psycopg), and Django uses psycopg2"
    return None


class RelayWakeups:
    """Waits for a notification on ``channel`` of the database ``alias``, or a timeout.

    ``connect()`` before the relay's first pass, so that nothing committed after it is missed;
    then ``wait(timeout)`` after each pass that found nothing. ``interrupt()``, safe from a
    signal handler or another thread, ends a wait at once.
    """

    def __init__(self, alias: str, channel: str) -> None:
        self.alias = alias
        self.channel = channel
        self._connection: psycopg.Connection[Any] | None = None
        self._reconnect_at = 0.0
        self._reconnect_delay = RECONNECT_FIRST
        self._was_connected = False
        self._closed = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    @property
    def listening(self) -> bool:
        """Whether the listening connection is up now."""
        return self._connection is not None

    def connect(self) -> bool:
        """Open the listening connection and ``LISTEN``; on failure, log it and schedule the
        next attempt. Return whether it is listening."""
        import psycopg
        from psycopg import sql

        params = connections[self.alias].get_connection_params()
        for key, value in _KEEPALIVES.items():
            params.setdefault(key, value)
        try:
            connection = psycopg.connect(**params, autocommit=True)
        except psycopg.Error as exc:
            self._schedule_reconnect(f"cannot connect: {exc}".strip())
            return False
        try:
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            connection.close()
            self._schedule_reconnect(f"LISTEN failed: {exc}".strip())
            return False
        self._connection = connection
        self._reconnect_delay = RECONNECT_FIRST
        if self._was_connected:
            logger.warning("Relay listening on %r again (database %r)", self.channel, self.alias)
        self._was_connected = True
        return True

    def wait(self, timeout: float) -> Wake:
        """Wait up to ``timeout`` seconds for a notification; several that arrived together
        count as one."""
        deadline = time.monotonic() + timeout
        while True:
            reconnect = self._connection is None and time.monotonic() >= self._reconnect_at
            if reconnect and self.connect():
                return Wake.RECONNECTED
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Wake.POLL
            watched = [self._wake_read]
            if self._connection is not None:
                watched.append(self._connection.fileno())
            else:
                remaining = min(remaining, max(0.0, self._reconnect_at - time.monotonic()))
            ready, _, _ = select.select(watched, [], [], remaining)
            if self._wake_read in ready:
                self._drain_pipe()
                return Wake.STOPPED
            if ready and self._received():
                return Wake.NOTIFIED

    def _received(self) -> bool:
        # The socket is readable: notifications, another message, or the connection's end.
        import psycopg

        assert self._connection is not None
        try:
            return bool(list(self._connection.notifies(timeout=0)))
        except psycopg.Error as exc:
            self._drop(f"lost: {exc}".strip())
            return False

    def _drop(self, why: str) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                logger.debug("Closing the listening connection failed", exc_info=True)
        self._reconnect_delay = RECONNECT_FIRST
        self._schedule_reconnect(why)

    def _schedule_reconnect(self, why: str) -> None:
        delay = self._reconnect_delay
        self._reconnect_at = time.monotonic() + delay
        self._reconnect_delay = min(delay * 2, RECONNECT_MAX)
        logger.warning(
            "Relay's listening connection to %r (channel %r) %s; polling until it reconnects, "
            "next attempt in %.0f s",
            self.alias,
            self.channel,
            why,
            delay,
        )

    def interrupt(self) -> None:
        """End the current or next ``wait()`` at once."""
        if self._closed:
            return
        # Full means already interrupted.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def _drain_pipe(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_read, 512):
                pass

    def close(self) -> None:
        """Close the listening connection and the interrupting pipe."""
        if self._closed:
            return
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

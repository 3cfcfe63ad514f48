"""Due times of scheduled deliveries: ``deliver_at``/``delay`` of ``publish()``, ``delay`` of
``@receiver``, and ``NotYet``'s ``at``/``delay``, checked where they are given."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from django_domain_events.exceptions import ScheduleError


def due_time(
    at: dt.datetime | None,
    delay: dt.timedelta | None,
    *,
    where: str,
    at_name: str = "deliver_at",
    now: dt.datetime | None = None,
) -> dt.datetime:
    """The moment ``at`` or ``delay`` from ``now`` name (``now`` if neither; a time already
    past is ``now`` too), checked: ``where`` and ``at_name`` name the call and its argument in
    the ``ScheduleError`` raised for bad values."""
    now = timezone.now() if now is None else now
    if at is not None and delay is not None:
        raise ScheduleError(f"{where}: give {at_name} or delay, not both.")
    if at is not None:
        if not isinstance(at, dt.datetime):
            raise ScheduleError(
                f"{where}: the due time {at!r} is a {type(at).__qualname__}; give an aware "
                f"datetime, such as timezone.now() + timedelta(hours=1)."
            )
        if timezone.is_naive(at):
            raise ScheduleError(
                f"{where}: the due time {at.isoformat()} is naive; give an aware datetime, "
                f"such as timezone.now() + timedelta(hours=1) or one with tzinfo=UTC."
            )
        return max(at, now)
    if delay is not None:
        return now + check_delay(delay, where=where)
    return now


def check_delay(delay: object, *, where: str) -> dt.timedelta:
    """``delay`` if it is a ``timedelta`` of zero or more, else ``ScheduleError``."""
    if isinstance(delay, bool) or not isinstance(delay, dt.timedelta):
        raise ScheduleError(
            f"{where}: the delay {delay!r} is a {type(delay).__qualname__}; give a timedelta, "
            f"such as timedelta(minutes=5)."
        )
    if delay < dt.timedelta(0):
        raise ScheduleError(f"{where}: the delay {delay} is negative; give a timedelta >= 0.")
    return delay

"""Selecting outbox rows for the operations commands: by id, event type, receiver and time.

``EventSelection`` and ``DeliverySelection`` are what ``replay_events`` and ``retry_deliveries``
parse from their options; ``parse_duration()`` and ``parse_moment()`` read the times they take.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_domain_events.models import (
    Delivery,
    DeliveryQuerySet,
    DeliveryState,
    OutboxEvent,
    OutboxEventQuerySet,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class SelectionError(ValueError):
    """An option that selects rows is malformed; the message says which and how to fix it."""


def parse_duration(text: str, *, option: str, default_unit: str = "d") -> dt.timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"``; a bare number is in
    ``default_unit``."""
    match = _DURATION.match(text)
    if match is None:
        raise SelectionError(
            f"{option} {text!r} is not a duration; write a number and a unit, such as 30d, "
            f"12h, 90m, 45s or 2w."
        )
    number, unit = match.groups()
    return dt.timedelta(seconds=float(number) * _UNITS[unit or default_unit])


def parse_moment(text: str, *, option: str) -> dt.datetime:
    """An ISO 8601 date or date-time (UTC when it names no time zone), or a duration meaning
    that long ago (``"2h"``)."""
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is not None:
            moment = dt.datetime(day.year, day.month, day.day)
    if moment is None:
        try:
            return timezone.now() - parse_duration(text, option=option, default_unit="s")
        except SelectionError:
            raise SelectionError(
                f"{option} {text!r} is neither a date-time such as 2026-05-01T12:00:00+00:00 "
                f"or 2026-05-01, nor a duration ago such as 2h or 7d."
            ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    return moment


def parse_optional_moment(text: str | None, *, option: str) -> dt.datetime | None:
    """``parse_moment()`` of an option that may be left out (None or empty)."""
    return parse_moment(text, option=option) if text else None


def parse_ids(values: Sequence[str], *, option: str) -> list[uuid.UUID]:
    """Ids given on the command line."""
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            raise SelectionError(f"{option} {value!r} is not an id (a UUID).") from None
    return ids


@dataclass(frozen=True)
class EventSelection:
    """Which events to act on: every condition given must hold."""

    ids: tuple[uuid.UUID, ...] = ()
    event_types: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @property
    def is_empty(self) -> bool:
        """Whether nothing narrows the selection (it would take every event)."""
        return not (self.ids or self.event_types or self.since or self.until)

    def events(self, using: str) -> OutboxEventQuerySet:
        """The selected events, oldest first."""
        rows = OutboxEvent.objects.using(using).all()
        if self.ids:
            rows = rows.filter(pk__in=self.ids)
        if self.event_types:
            rows = rows.filter(event_type__in=self.event_types)
        if self.since is not None:
            rows = rows.filter(occurred_at__gte=self.since)
        if self.until is not None:
            rows = rows.filter(occurred_at__lt=self.until)
        return rows.order_by("occurred_at", "id")


@dataclass(frozen=True)
class DeliverySelection:
    """Which deliveries to act on: every condition given must hold."""

    states: tuple[str, ...] = (DeliveryState.DEAD,)
    ids: tuple[uuid.UUID, ...] = ()
    event_ids: tuple[uuid.UUID, ...] = ()
    event_types: tuple[str, ...] = ()
    receivers: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @property
    def is_empty(self) -> bool:
        """Whether nothing but the states narrows the selection."""
        return not (
            self.ids
            or self.event_ids
            or self.event_types
            or self.receivers
            or self.since
            or self.until
        )

    def deliveries(self, using: str) -> DeliveryQuerySet:
        """The selected deliveries, oldest first. ``since``/``until`` apply to when the
        delivery was written."""
        rows = Delivery.objects.using(using).filter(state__in=self.states)
        conditions = Q()
        if self.ids:
            conditions &= Q(pk__in=self.ids)
        if self.event_ids:
            conditions &= Q(event_id__in=self.event_ids)
        if self.event_types:
            conditions &= Q(event__event_type__in=self.event_types)
        if self.receivers:
            conditions &= Q(receiver__in=self.receivers)
        if self.since is not None:
            conditions &= Q(created_at__gte=self.since)
        if self.until is not None:
            conditions &= Q(created_at__lt=self.until)
        return rows.filter(conditions).order_by("created_at", "id")

"""Erasing a data subject's sensitive values from the outbox: ``erase_sensitive``.

Each of the subject's events (found by a JSON lookup of its ``data_subject`` field in the
stored payload) keeps its row and its deliveries, the audit trail; its sensitive values become
``ERASED``, and its ``headers`` record when and which fields (``erased_at``,
``erased_fields``). The errors and tracebacks its deliveries and their attempts recorded are
scrubbed of the erased values too. Events are rewritten in batches, one transaction each.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, router, transaction
from django.db.models import Q
from django.utils import timezone

from django_domain_events.declaration.events import event_classes
from django_domain_events.declaration.sensitivity import (
    ERASED,
    Path,
    Sensitivity,
    declared_named_events,
    replace_at,
    scrub,
    sensitivity_of,
    spell,
    texts_of,
)
from django_domain_events.models import Delivery, DeliveryAttempt, OutboxEvent
from django_domain_events.operations.selection import SelectionError

BATCH_SIZE = 500
"""Events rewritten per transaction."""

ERASED_AT = "erased_at"
"""The ``headers`` key recording when an event's sensitive values were erased (ISO 8601)."""

ERASED_FIELDS = "erased_fields"
"""The ``headers`` key listing the paths of the fields erased."""


@dataclass
class ErasureResult:
    """What an erasure did (or, in a dry run, would do): events rewritten and values erased,
    by event type, and failure texts scrubbed."""

    dry_run: bool = False
    events: dict[str, int] = field(default_factory=dict)
    values: dict[str, int] = field(default_factory=dict)
    scrubbed_failures: int = 0

    @property
    def total_events(self) -> int:
        """Events rewritten, all types together."""
        return sum(self.events.values())

    @property
    def total_values(self) -> int:
        """Values erased, all types together."""
        return sum(self.values.values())


def erasable_event_types() -> dict[str, Sensitivity]:
    """The event types that declare both sensitive fields and a data subject, by type."""
    found = {
        cls.event_type: sensitivity_of(cls.event_type)
        for cls in event_classes()
        if cls.data_subject is not None
    }
    found.update(declared_named_events())
    return {
        event_type: declared
        for event_type, declared in sorted(found.items())
        if declared.fields and declared.data_subject is not None
    }


def subject_matches(path: Path, subject: str) -> Q:
    """Events whose payload holds ``subject`` at ``path``: as the string, and as the number or
    UUID it spells, since the payload stores ids as they were published."""
    lookup = "payload__" + "__".join(path)
    values: list[Any] = [subject]
    with contextlib.suppress(ValueError):
        values.append(int(subject))
    try:
        canonical = str(uuid.UUID(subject))
    except ValueError:
        pass
    else:
        if canonical != subject:
            values.append(canonical)
    matches = Q()
    for value in values:
        matches |= Q(**{lookup: value})
    return matches


def erase_sensitive(
    subject: str,
    *,
    event_types: Sequence[str] = (),
    using: str | None = None,
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
    on_batch: Callable[[str, int, int], None] | None = None,
) -> ErasureResult:
    """Replace the sensitive values of ``subject``'s events with ``ERASED``: of every erasable
    event type, or of ``event_types``. Raises ``SelectionError`` for a subject or event type
    that cannot be erased. ``on_batch(event_type, events, values)`` hears of each batch."""
    if not isinstance(subject, str) or not subject.strip():
        raise SelectionError("Give the data subject to erase, such as --subject 42.")
    targets = _targets(event_types)
    alias = using or router.db_for_write(OutboxEvent) or DEFAULT_DB_ALIAS
    result = ErasureResult(dry_run=dry_run)
    for event_type, declared in targets.items():
        assert declared.data_subject is not None  # erasable_event_types() keeps only these
        rows = (
            OutboxEvent.objects.using(alias)
            .filter(event_type=event_type)
            .filter(subject_matches(declared.data_subject, subject))
            .order_by("pk")
        )
        events = values = 0
        after: uuid.UUID | None = None
        while True:
            with transaction.atomic(using=alias):
                page = rows if after is None else rows.filter(pk__gt=after)
                if not dry_run:
                    page = page.select_for_update()
                batch = list(page.only("id", "payload", "headers")[:batch_size])
                if not batch:
                    break
                after = batch[-1].pk
                erased, count, found = _erase_batch(batch, declared.fields)
                if erased and not dry_run:
                    OutboxEvent.objects.using(alias).bulk_update(erased, ["payload", "headers"])
                    result.scrubbed_failures += _scrub_failures(
                        alias, [row.pk for row in erased], texts_of(found)
                    )
            events, values = events + len(erased), values + count
            if on_batch is not None and erased:
                on_batch(event_type, len(erased), count)
        if events:
            result.events[event_type], result.values[event_type] = events, values
    return result


def _targets(event_types: Sequence[str]) -> dict[str, Sensitivity]:
    erasable = erasable_event_types()
    if not erasable:
        raise SelectionError(
            "No event type declares sensitive fields and a data subject, so nothing can be "
            "erased. Mark fields Annotated[str, Sensitive] and set data_subject on the event "
            "class, or call declare_sensitive(event_type, fields=..., data_subject=...)."
        )
    if not event_types:
        return erasable
    for event_type in event_types:
        if event_type not in erasable:
            declared = sensitivity_of(event_type)
            missing = "no sensitive fields" if not declared.fields else "no data subject"
            raise SelectionError(
                f"Event type {event_type!r} cannot be erased: it declares {missing}. "
                f"Erasable event types: {', '.join(erasable)}."
            )
    return {event_type: erasable[event_type] for event_type in event_types}


def _erase_batch(
    batch: list[OutboxEvent], paths: tuple[Path, ...]
) -> tuple[list[OutboxEvent], int, list[Any]]:
    erased: list[OutboxEvent] = []
    found: list[Any] = []
    now = timezone.now().isoformat()
    for row in batch:
        if type(row.payload) is not dict:
            continue  # unreadable (UnreadableJSON): nothing a path can reach
        replaced: list[Any] = []
        payload = row.payload
        for path in paths:
            payload = replace_at(payload, path, ERASED, replaced)
        if not replaced:
            continue
        headers = dict(row.headers) if type(row.headers) is dict else {}
        headers[ERASED_AT] = now
        headers[ERASED_FIELDS] = sorted({*headers.get(ERASED_FIELDS, ()), *map(spell, paths)})
        row.payload, row.headers = payload, headers
        erased.append(row)
        found.extend(replaced)
    return erased, len(found), found


def _scrub_failures(alias: str, event_ids: list[uuid.UUID], values: list[str]) -> int:
    """Scrub ``values`` from the errors and tracebacks of the deliveries of ``event_ids`` and
    their attempts; return how many rows changed."""
    if not values:
        return 0
    changed = 0
    failed = ~Q(last_error="") | ~Q(traceback="")
    deliveries = Delivery.objects.using(alias).filter(failed, event_id__in=event_ids)
    for delivery_id, error, trace in deliveries.values_list("id", "last_error", "traceback"):
        clean_error, clean_trace = scrub(error, values, ERASED), scrub(trace, values, ERASED)
        if (clean_error, clean_trace) != (error, trace):
            Delivery.objects.using(alias).filter(pk=delivery_id).update(
                last_error=clean_error, traceback=clean_trace
            )
            changed += 1
    attempts = DeliveryAttempt.objects.using(alias).filter(delivery__event_id__in=event_ids)
    for attempt_id, error, trace in attempts.values_list("id", "error", "traceback"):
        clean_error, clean_trace = scrub(error, values, ERASED), scrub(trace, values, ERASED)
        if (clean_error, clean_trace) != (error, trace):
            DeliveryAttempt.objects.using(alias).filter(pk=attempt_id).update(
                error=clean_error, traceback=clean_trace
            )
            changed += 1
    return changed

"""The outbox dashboard: the last 24 hours hour by hour, what is owed now, which receivers are
failing, and which ordering lines a dead delivery blocks. A handful of indexed queries, whatever
the size of the outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Min
from django.db.models.functions import TruncHour
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_domain_events.admin.charts import BarChart, Series, stacked_bar_chart
from django_domain_events.admin.lines import BlockedLine, blocked
from django_domain_events.admin.pagination import bounded_count
from django_domain_events.conf import settings
from django_domain_events.models import Delivery, DeliveryState, OutboxEvent

HOURS = 24
"""Hours the charts cover, the current one included."""

FAILING_RECEIVERS = 10
"""Receivers listed under "failing"."""

OWED_EXACT_LIMIT = 100_000
"""Owed deliveries counted exactly; past this many, the count is PostgreSQL's estimate."""


@dataclass(frozen=True)
class FailingReceiver:
    """A receiver whose deliveries attempted in the window were left failed or dead."""

    name: str
    failed: int
    dead: int

    @property
    def total(self) -> int:
        """Failed and dead together."""
        return self.failed + self.dead


@dataclass(frozen=True)
class OutboxStats:
    """What the dashboard shows, computed at ``now``."""

    now: dt.datetime
    hours: tuple[dt.datetime, ...]
    published: tuple[int, ...]
    delivered: tuple[int, ...]
    failed: tuple[int, ...]
    dead: tuple[int, ...]
    owed: int
    owed_is_estimate: bool
    oldest_owed_since: dt.datetime | None
    failing_receivers: tuple[FailingReceiver, ...]
    waiting: int = 0
    """Deliveries waiting behind an earlier delivery of their ordering key."""
    waiting_is_estimate: bool = False
    blocked_keys: int = 0
    """Lines (receiver, ordering key) a dead delivery holds up until a person acts."""
    blocked: tuple[BlockedLine, ...] = ()
    """The first of them, longest blocked first."""

    @property
    def oldest_owed_age(self) -> dt.timedelta | None:
        """How long the delivery owed longest has waited: since it was written (pending),
        since its retry fell due (failed), or since it was dispatched (a lost dispatch)."""
        return None if self.oldest_owed_since is None else self.now - self.oldest_owed_since


def _hourly(rows: Any, hours: tuple[dt.datetime, ...]) -> dict[dt.datetime, int]:
    counts = dict.fromkeys(hours, 0)
    for hour, n in rows:
        hour = timezone.localtime(hour) if timezone.is_aware(hour) else hour
        if hour in counts:
            counts[hour] += n
    return counts


def outbox_stats(using: str, now: dt.datetime | None = None) -> OutboxStats:
    """The dashboard's figures, read from the outbox on ``using``.

    "Delivered", "failed" and "dead" count deliveries by the hour of their last attempt and the
    state it left them in (the ``last_attempt_at`` index), and the failing receivers are those
    whose deliveries attempted in the window were left failed or dead; "published" counts events
    by the hour they occurred (the ``occurred_at`` index). Waiting deliveries and the lines a
    dead delivery blocks are read through the state index.
    """
    now = now or timezone.now()
    current = timezone.localtime(now) if timezone.is_aware(now) else now
    current = current.replace(minute=0, second=0, microsecond=0)
    hours = tuple(current - dt.timedelta(hours=HOURS - 1 - i) for i in range(HOURS))
    since = hours[0]

    published = _hourly(
        OutboxEvent.objects.using(using)
        .filter(occurred_at__gte=since)
        .annotate(hour=TruncHour("occurred_at"))
        .order_by()
        .values_list("hour")
        .annotate(n=Count("pk")),
        hours,
    )
    # One pass over the deliveries attempted in the window gives the outcome chart and the
    # failing receivers both.
    outcomes = (
        Delivery.objects.using(using)
        .filter(last_attempt_at__gte=since)
        .annotate(hour=TruncHour("last_attempt_at"))
        .order_by()
        .values_list("state", "hour", "receiver")
        .annotate(n=Count("pk"))
    )
    by_state: dict[str, list[tuple[dt.datetime, int]]] = {}
    failing: dict[str, dict[str, int]] = {}
    for state, hour, receiver, n in outcomes:
        by_state.setdefault(state, []).append((hour, n))
        if state in (DeliveryState.FAILED, DeliveryState.DEAD):
            counts = failing.setdefault(receiver, {})
            counts[state] = counts.get(state, 0) + n
    delivered, failed, dead = (
        _hourly(by_state.get(state, []), hours)
        for state in (DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.DEAD)
    )

    # Owed as the relay and events_status count it, each part read through its own index.
    deliveries = Delivery.objects.using(using)
    owed_count, owed_is_estimate = 0, False
    oldest: dt.datetime | None = None
    for owed, waiting_since in (
        (deliveries.pending_past(dt.timedelta(seconds=settings.RELAY_GRACE)), "created_at"),
        (deliveries.retry_due(), "next_attempt_at"),
        (deliveries.scheduled_due(), "next_attempt_at"),
        (
            deliveries.dispatch_lost(dt.timedelta(seconds=settings.DISPATCH_TIMEOUT)),
            "dispatched_at",
        ),
    ):
        count, estimated = bounded_count(owed, OWED_EXACT_LIMIT)
        owed_count += count
        owed_is_estimate = owed_is_estimate or estimated
        if count:
            first = owed.aggregate(first=Min(waiting_since))["first"]
            if first is not None and (oldest is None or first < oldest):
                oldest = first

    # Waiting deliveries are counted through the state index, like the owed ones.
    waiting, waiting_is_estimate = bounded_count(
        deliveries.filter(state=DeliveryState.WAITING), OWED_EXACT_LIMIT
    )
    blocked_keys, blocked_listed = blocked(using)

    top = sorted(failing.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return OutboxStats(
        now=now,
        hours=hours,
        published=tuple(published.values()),
        delivered=tuple(delivered.values()),
        failed=tuple(failed.values()),
        dead=tuple(dead.values()),
        owed=owed_count,
        owed_is_estimate=owed_is_estimate,
        oldest_owed_since=oldest,
        failing_receivers=tuple(
            FailingReceiver(
                name=name,
                failed=counts.get(DeliveryState.FAILED, 0),
                dead=counts.get(DeliveryState.DEAD, 0),
            )
            for name, counts in top[:FAILING_RECEIVERS]
        ),
        waiting=waiting,
        waiting_is_estimate=waiting_is_estimate,
        blocked_keys=blocked_keys,
        blocked=blocked_listed,
    )


def charts(stats: OutboxStats) -> tuple[BarChart, BarChart]:
    """The published chart and the delivery outcomes chart of ``stats``."""
    labels = [hour.strftime("%H:00") for hour in stats.hours]
    return (
        stacked_bar_chart(
            gettext("Events published per hour"),
            labels,
            [Series("dde-fill-published", gettext("published"), stats.published)],
        ),
        stacked_bar_chart(
            gettext("Delivery outcomes per hour (by last attempt)"),
            labels,
            [
                Series("dde-fill-delivered", str(DeliveryState.DELIVERED.label), stats.delivered),
                Series("dde-fill-failed", str(DeliveryState.FAILED.label), stats.failed),
                Series("dde-fill-dead", str(DeliveryState.DEAD.label), stats.dead),
            ],
        ),
    )


def dashboard_view(model_admin: Any) -> Callable[[HttpRequest], HttpResponse]:
    """The dashboard page for ``model_admin`` (the events admin), for users who may view
    events."""

    def view(request: HttpRequest) -> HttpResponse:
        if not model_admin.has_view_permission(request):
            raise PermissionDenied
        stats = outbox_stats(model_admin.get_queryset(request).db)
        published_chart, outcomes_chart = charts(stats)
        opts = model_admin.model._meta
        request.current_app = model_admin.admin_site.name
        return TemplateResponse(
            request,
            "django_domain_events/admin/dashboard.html",
            {
                **model_admin.admin_site.each_context(request),
                "title": _("Outbox dashboard"),
                "opts": opts,
                "app_label": opts.app_label,
                "stats": stats,
                "charts": (published_chart, outcomes_chart),
                "totals": {
                    "published": sum(stats.published),
                    "delivered": sum(stats.delivered),
                    "failed": sum(stats.failed),
                    "dead": sum(stats.dead),
                },
                "media": model_admin.media,
            },
        )

    return view

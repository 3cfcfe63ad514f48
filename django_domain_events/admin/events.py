"""Outbox events in the admin: the list with each event's delivery states, and the read-only
event page with its payload and deliveries."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from django_domain_events.admin.actions import replay_selected_events
from django_domain_events.admin.badges import STATE_ORDER, state_badge
from django_domain_events.admin.base import (
    MEDIA_CSS,
    ReadOnlyAdmin,
    TabularInline,
    search_exactly,
    short_uuid,
)
from django_domain_events.admin.dashboard import dashboard_view
from django_domain_events.admin.dates import FastDateHierarchyChangeList
from django_domain_events.admin.filters import EventDeliveryStateFilter, EventTypeFilter
from django_domain_events.admin.formatting import breakable_name, to_the_second
from django_domain_events.admin.highlighting import highlight_json
from django_domain_events.admin.pagination import EstimatedCountPaginator
from django_domain_events.declaration.sensitivity import redact
from django_domain_events.models import Delivery, OutboxEvent


def attach_delivery_counts(events: Sequence[OutboxEvent]) -> None:
    """Give each event a ``delivery_counts`` Counter of its deliveries by state, with one
    grouped query for them all."""
    ids = [event.pk for event in events]
    counts: dict[uuid.UUID, Counter[str]] = {pk: Counter() for pk in ids}
    if ids:
        rows = (
            Delivery.objects.using(events[0]._state.db)
            .filter(event_id__in=ids)
            .order_by()
            .values_list("event_id", "state")
            .annotate(n=Count("pk"))
        )
        for event_id, state, n in rows:
            counts[event_id][state] += n
    for event in events:
        event.delivery_counts = counts[event.pk]  # type: ignore[attr-defined]


class OutboxEventChangeList(FastDateHierarchyChangeList):
    """The events list; after loading a page, counts its deliveries in one query."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: Any = None
    ) -> QuerySet[OutboxEvent]:
        # The list shows no payload: a page of them could weigh megabytes.
        return super().get_queryset(request, exclude_parameters).defer("payload", "headers")

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        attach_delivery_counts(list(self.result_list))


class DeliveryInline(TabularInline):
    """The event's deliveries on its page, read-only, each linking to its own page."""

    model = Delivery
    extra = 0
    can_delete = False
    show_change_link = True
    fields = (
        "receiver",
        "dispatcher",
        "state_badge",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    )
    readonly_fields = fields
    ordering = ("receiver", "id")
    verbose_name_plural = _("deliveries")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("state"))
    def state_badge(self, obj: Delivery) -> SafeString:
        return state_badge(obj.state)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    """Published events: read-only, searchable by id, with their deliveries' states."""

    list_display = (
        "short_id",
        "event_type_name",
        "version",
        "occurred_to_the_second",
        "correlation_short",
        "deliveries_summary",
    )
    list_display_links = ("short_id",)
    list_filter = (EventTypeFilter, EventDeliveryStateFilter)
    # Searching is by exact id (see get_search_results); these name what the box searches.
    search_fields = ("=id", "=correlation_id", "=causation_id")
    search_help_text = _("An event id, correlation id or causation id, exactly.")
    date_hierarchy = "occurred_at"
    # Only orders an index serves; sorting millions of rows by another column takes seconds.
    sortable_by = ("occurred_at",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    actions = (replay_selected_events,)
    fieldsets = (
        (
            None,
            {"fields": ("id", "event_type", "version", "occurred_at", "payload_highlighted")},
        ),
        (
            _("Envelope"),
            {"fields": ("correlation_id", "causation_link", "ordering_key", "headers_highlighted")},
        ),
    )
    # Every field shown is read-only: the outbox is never edited by form.
    readonly_fields = tuple(flatten_fieldsets(fieldsets))
    inlines = (DeliveryInline,)

    class Media:
        css = MEDIA_CSS

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return OutboxEventChangeList

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(dashboard_view(self)),
            name=f"{opts.app_label}_{opts.model_name}_dashboard",
        )
        return [dashboard, *super().get_urls()]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        """Whether the user may replay events (``replay_outboxevent``)."""
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.replay_outboxevent")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OutboxEvent], search_term: str
    ) -> tuple[QuerySet[OutboxEvent], bool]:
        return search_exactly(
            queryset, search_term, uuids=("pk", "causation_id"), text="correlation_id"
        )

    @admin.display(description=_("event"), ordering="id")
    def short_id(self, obj: OutboxEvent) -> SafeString:
        return format_html('<span title="{}">{}</span>', obj.pk, short_uuid(obj.pk))

    @admin.display(description=_("event type"))
    def event_type_name(self, obj: OutboxEvent) -> SafeString:
        return breakable_name(obj.event_type)

    @admin.display(description=_("occurred at"), ordering="occurred_at")
    def occurred_to_the_second(self, obj: OutboxEvent) -> str:
        return to_the_second(obj.occurred_at)

    @admin.display(description=_("correlation id"))
    def correlation_short(self, obj: OutboxEvent) -> SafeString:
        # Correlation ids default to the first event's UUID; its tail tells chains apart.
        value = obj.correlation_id
        try:
            short = short_uuid(uuid.UUID(value))
        except ValueError:
            short = Truncator(value).chars(24)
        return format_html('<span title="{}">{}</span>', value, short)

    @admin.display(description=_("deliveries"))
    def deliveries_summary(self, obj: OutboxEvent) -> SafeString:
        counts: Counter[str] | None = getattr(obj, "delivery_counts", None)
        if counts is None:
            attach_delivery_counts([obj])
            counts = obj.delivery_counts  # type: ignore[attr-defined]
        if not counts:
            return format_html('<span class="dde-muted">{}</span>', _("no receivers"))
        known = [state for state in STATE_ORDER if counts[state]]
        others = sorted(state for state in counts if state not in STATE_ORDER)
        return format_html_join(
            " · ", "{}", ((state_badge(state, counts[state]),) for state in known + others)
        )

    @admin.display(description=_("payload"))
    def payload_highlighted(self, obj: OutboxEvent) -> SafeString:
        return highlight_json(redact(obj.event_type, obj.payload))

    @admin.display(description=_("headers"))
    def headers_highlighted(self, obj: OutboxEvent) -> SafeString:
        return highlight_json(obj.headers)

    @admin.display(description=_("causation id"))
    def causation_link(self, obj: OutboxEvent) -> SafeString | str:
        if obj.causation_id is None:
            return "-"
        opts = self.model._meta
        url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=(obj.causation_id,),
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, obj.causation_id)

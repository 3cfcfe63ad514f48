"""Deliveries in the admin: state, attempts, errors and tracebacks, read-only, with the retry
action."""

from __future__ import annotations

import uuid

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from ..models import Delivery
from .actions import retry_selected_deliveries
from .badges import state_badge
from .base import MEDIA_CSS, ReadOnlyAdmin, short_uuid
from .filters import DispatcherFilter, ReceiverFilter
from .pagination import EstimatedCountPaginator


def task_result_url(task_id: str) -> str | None:
    """The admin page of the Celery ``TaskResult`` of ``task_id``, when django-celery-results
    is installed with its admin; None otherwise."""
    if not task_id or not apps.is_installed("django_celery_results"):
        return None
    try:
        changelist = reverse("admin:django_celery_results_taskresult_changelist")
    except NoReverseMatch:
        return None
    # Its changelist searches task ids; linking there costs no query per row.
    return f"{changelist}?{urlencode({'q': task_id})}"


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Deliveries: read-only, filterable by state, receiver and dispatcher."""

    list_display = (
        "short_id",
        "receiver",
        "dispatcher",
        "state_badge",
        "attempts",
        "next_attempt_at",
        "dispatched_at",
        "delivered_at",
        "last_error_short",
        "event_link",
        "task_link",
    )
    list_display_links = ("short_id",)
    list_filter = ("state", ReceiverFilter, DispatcherFilter)
    # Searching is by exact id (see get_search_results); these name what the box searches.
    search_fields = ("=id", "=event__id", "=task_id")
    search_help_text = _("A delivery id, event id or task id, exactly.")
    list_select_related = ("event",)
    # Delivery ids are time-ordered (UUIDv7): newest first through the primary key's index.
    ordering = ("-id",)
    sortable_by = ()
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    actions = (retry_selected_deliveries,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "event_link",
                    "receiver",
                    "dispatcher",
                    "queue",
                    "task_link",
                    "state_badge",
                    "attempts",
                )
            },
        ),
        (_("Last failure"), {"fields": ("last_error", "traceback_details")}),
        (
            _("Times"),
            {
                "fields": (
                    "created_at",
                    "next_attempt_at",
                    "dispatched_at",
                    "last_attempt_at",
                    "delivered_at",
                    "claimed_by",
                    "claimed_until",
                    "ordering_key",
                )
            },
        ),
    )
    # Every field shown is read-only: the outbox is never edited by form.
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    class Media:
        css = MEDIA_CSS

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Whether the user may retry deliveries (``retry_delivery``)."""
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.retry_delivery")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Delivery], search_term: str
    ) -> tuple[QuerySet[Delivery], bool]:
        # Exact matches only, each served by an index (see OutboxEventAdmin).
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            as_uuid = uuid.UUID(term)
        except ValueError:
            return queryset.filter(task_id=term), False
        return (
            queryset.filter(
                Q(pk=as_uuid) | Q(event_id=as_uuid) | Q(task_id__in={term, str(as_uuid)})
            ),
            False,
        )

    @admin.display(description=_("delivery"), ordering="id")
    def short_id(self, obj: Delivery) -> SafeString:
        return format_html('<span title="{}">{}</span>', obj.pk, short_uuid(obj.pk))

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj: Delivery) -> SafeString:
        return state_badge(obj.state)

    @admin.display(description=_("last error"))
    def last_error_short(self, obj: Delivery) -> str:
        return Truncator(obj.last_error).chars(70)

    @admin.display(description=_("event"))
    def event_link(self, obj: Delivery) -> SafeString:
        url = reverse(
            "admin:django_domain_events_outboxevent_change",
            args=(obj.event_id,),
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, obj.event.event_type)

    @admin.display(description=_("task"))
    def task_link(self, obj: Delivery) -> SafeString | str:
        url = task_result_url(obj.task_id)
        if url is None:
            return obj.task_id or "-"
        return format_html('<a href="{}">{}</a>', url, obj.task_id)

    @admin.display(description=_("traceback"))
    def traceback_details(self, obj: Delivery) -> SafeString | str:
        if not obj.traceback:
            return "-"
        return format_html(
            '<details class="dde-traceback"><summary>{}</summary><pre>{}</pre></details>',
            _("Show traceback"),
            obj.traceback,
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        # The event's type is shown; its payload (up to MAX_PAYLOAD_BYTES each) is not loaded.
        return (
            super()
            .get_queryset(request)
            .select_related("event")
            .defer("event__payload", "event__headers")
        )

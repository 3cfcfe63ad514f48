"""Deliveries in the admin: state, attempts, errors and tracebacks, and for an ordered delivery
its place in its ordering line; read-only, with the retry and skip actions."""

from __future__ import annotations

import uuid
from typing import Any

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
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_domain_events.admin.actions import retry_selected_deliveries, skip_selected_in_lines
from django_domain_events.admin.badges import state_badge
from django_domain_events.admin.base import MEDIA_CSS, ReadOnlyAdmin, short_uuid
from django_domain_events.admin.filters import (
    DispatcherFilter,
    HoldingUpFilter,
    OrderingKeyFilter,
    ReceiverFilter,
)
from django_domain_events.admin.lines import (
    ahead_of,
    capped_count,
    count_text,
    held_up_by,
    waiting_behind,
)
from django_domain_events.admin.pagination import EstimatedCountPaginator
from django_domain_events.declaration.registry import registry, skips_dead
from django_domain_events.models import Delivery, DeliveryState


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


ORDERING_FIELDSET: Any = (
    _("Ordering"),
    {"fields": ("ordering_key", "ordering_seq", "line_place")},
)
"""The section of an ordered delivery's page: its key, its number, its place in its line."""


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Deliveries: read-only, filterable by state, receiver, dispatcher and ordering line."""

    list_display = (
        "short_id",
        "receiver",
        "dispatcher",
        "state_badge",
        "line_short",
        "attempts",
        "next_attempt_at",
        "dispatched_at",
        "delivered_at",
        "last_error_short",
        "event_link",
        "task_link",
    )
    list_display_links = ("short_id",)
    list_filter = ("state", HoldingUpFilter, ReceiverFilter, DispatcherFilter, OrderingKeyFilter)
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
    actions = (retry_selected_deliveries, skip_selected_in_lines)
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
                )
            },
        ),
        ORDERING_FIELDSET,
    )
    # Every field shown is read-only: the outbox is never edited by form.
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    class Media:
        css = MEDIA_CSS

    def get_fieldsets(self, request: HttpRequest, obj: Delivery | None = None) -> Any:
        # An unordered delivery has no line: its page leaves the section out.
        if obj is not None and (obj.ordering_key or obj.ordering_seq is not None):
            return self.fieldsets
        return tuple(fieldset for fieldset in self.fieldsets if fieldset is not ORDERING_FIELDSET)

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

    @admin.display(description=_("ordering key"))
    def line_short(self, obj: Delivery) -> SafeString | str:
        if not obj.ordering_key:
            return ""
        key = format_html(
            '<span title="{}">{}</span>', obj.ordering_key, Truncator(obj.ordering_key).chars(24)
        )
        if obj.ordering_seq is None:
            return key
        return format_html('{} <span class="dde-muted">#{}</span>', key, obj.ordering_seq)

    @admin.display(description=_("place in its line"))
    def line_place(self, obj: Delivery) -> SafeString | str:
        if not obj.ordering_key:
            if obj.ordering_seq is None:
                return "-"
            return format_html(
                gettext(
                    "Taken out of the line of ordering key {} (skipped): the deliveries behind "
                    "it went on without it. Retried, it runs on its own."
                ),
                obj.event.ordering_key,
            )
        if obj.ordering_seq is None:
            return "-"  # written before deliveries were numbered: no place to show
        if obj.state == DeliveryState.WAITING:
            return self._waiting_place(obj)
        if obj.state == DeliveryState.DELIVERED:
            return gettext("Delivered: nothing waits on it.")
        behind = waiting_behind(obj)
        count = capped_count(behind)
        if count:
            url = self._changelist_url(
                receiver=obj.receiver,
                ordering_key=obj.ordering_key,
                state__exact=DeliveryState.WAITING,
                ordering_seq__gt=obj.ordering_seq,
            )
            text = format_html(
                '<a href="{}">{}</a>',
                url,
                count_text(
                    count,
                    ngettext(
                        "%(count)s delivery waits behind it",
                        "%(count)s deliveries wait behind it",
                        count,
                    ),
                ),
            )
        else:
            text = format_html("{}", gettext("Nothing waits behind it"))
        if obj.state != DeliveryState.DEAD:
            note = gettext("they run, in order, once it settles.") if count else ""
        elif skips_dead(registry.get(obj.receiver)):
            note = gettext("its receiver skips dead deliveries, so it holds up nothing.")
        else:
            note = format_html(
                gettext(
                    "it holds up its line until it is retried (the line then goes on in order "
                    "once it succeeds) or skipped in its line: {select}."
                ),
                select=format_html(
                    '<a href="{}">{}</a>',
                    self._changelist_url(q=obj.pk),
                    gettext("select it in the list to do either"),
                ),
            )
        return format_html("{}{}{}", text, "; " if note else ".", note)

    def _waiting_place(self, obj: Delivery) -> SafeString:
        head = held_up_by(obj)
        if head is None:
            return format_html(
                "{}",
                gettext(
                    "Nothing unsettled is ahead of it any more: the relay's next pass releases it."
                ),
            )
        ahead = ahead_of(obj)
        url = reverse(
            "admin:django_domain_events_delivery_change",
            args=(head.pk,),
            current_app=self.admin_site.name,
        )
        held = format_html(
            gettext("Waiting behind delivery {link} ({state}, #{seq}); {ahead}."),
            link=format_html('<a href="{}">{}</a>', url, short_uuid(head.pk)),
            state=state_badge(head.state),
            seq=head.ordering_seq,
            ahead=count_text(
                ahead,
                ngettext(
                    "%(count)s unsettled delivery is ahead of it in its line",
                    "%(count)s unsettled deliveries are ahead of it in its line",
                    ahead,
                ),
            ),
        )
        if head.state != DeliveryState.DEAD:
            return held
        return format_html(
            "{} {}",
            held,
            gettext("That one is dead: retry it, or skip it in its line, to let the line go on."),
        )

    def _changelist_url(self, **params: Any) -> str:
        url = reverse(
            "admin:django_domain_events_delivery_changelist", current_app=self.admin_site.name
        )
        return f"{url}?{urlencode(params)}"

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

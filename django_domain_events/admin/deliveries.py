"""Deliveries in the admin: state, attempts, errors and tracebacks, and for an ordered delivery
its place in its ordering line; read-only, with the retry and skip actions."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_domain_events.admin.actions import (
    cancel_selected_deliveries,
    retry_selected_deliveries,
    skip_selected_in_lines,
)
from django_domain_events.admin.attempts import DeliveryAttemptInline
from django_domain_events.admin.badges import state_badge
from django_domain_events.admin.base import MEDIA_CSS, ReadOnlyAdmin, search_exactly, short_uuid
from django_domain_events.admin.filters import (
    DispatcherFilter,
    HoldingUpFilter,
    OrderingKeyFilter,
    ReceiverFilter,
)
from django_domain_events.admin.formatting import breakable_name, error_preview, to_the_second
from django_domain_events.admin.lines import (
    ahead_of,
    capped_count,
    count_text,
    held_up_by,
    waiting_behind,
)
from django_domain_events.admin.pagination import EstimatedCountPaginator
from django_domain_events.declaration.registry import registry, skips_dead
from django_domain_events.models import CANCELLABLE_STATES, Delivery, DeliveryState


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

TIMES_FIELDSET: Any = (
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
)
WAITING_TIMES_FIELDSET: Any = (
    TIMES_FIELDSET[0],
    {"fields": tuple(f for f in TIMES_FIELDSET[1]["fields"] if f != "next_attempt_at")},
)
"""The times of a waiting delivery: no next attempt, it runs once the one ahead settles."""


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Deliveries: read-only, filterable by state, receiver, dispatcher and ordering line."""

    # Few columns, each wrapping, so that the list fits at 1280 px beside the admin's sidebars;
    # a column stacks what belongs together (a receiver with its dispatcher and line).
    list_display = (
        "short_id",
        "receiver_summary",
        "state_summary",
        "time_summary",
        "last_error_short",
        "event_and_task",
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
    actions = (retry_selected_deliveries, skip_selected_in_lines, cancel_selected_deliveries)
    inlines = (DeliveryAttemptInline,)
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
        TIMES_FIELDSET,
        ORDERING_FIELDSET,
    )
    # Every field shown is read-only: the outbox is never edited by form.
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    class Media:
        css = MEDIA_CSS

    def get_fieldsets(self, request: HttpRequest, obj: Delivery | None = None) -> Any:
        fieldsets = [fieldset for fieldset in self.fieldsets if fieldset is not ORDERING_FIELDSET]
        if obj is None or not (obj.ordering_key or obj.ordering_seq is not None):
            # An unordered delivery has no line: its page leaves the section out.
            return tuple(fieldsets)
        if obj.state != DeliveryState.WAITING:
            return self.fieldsets
        # What a waiting delivery waits behind is what its reader came for: first on the page.
        times = [WAITING_TIMES_FIELDSET if f is TIMES_FIELDSET else f for f in fieldsets]
        return (ORDERING_FIELDSET, *times)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        # The retry and skip buttons of its page post to the list's actions, which confirm first.
        obj = self.get_object(request, object_id)
        context = {**(extra_context or {}), "delivery_actions": self.page_actions(request, obj)}
        return super().change_view(request, object_id, form_url, context)

    def page_actions(self, request: HttpRequest, obj: Delivery | None) -> list[tuple[str, str]]:
        """The (action, label) buttons the page of ``obj`` offers to this user."""
        if obj is None:
            return []
        buttons = []
        if self.has_retry_permission(request):
            if obj.state in (DeliveryState.FAILED, DeliveryState.DEAD):
                buttons.append(("retry_selected_deliveries", gettext("Retry")))
            if obj.state == DeliveryState.DEAD and obj.ordering_key:
                buttons.append(("skip_selected_in_lines", gettext("Skip in its line")))
        if obj.state in CANCELLABLE_STATES and self.has_cancel_permission(request):
            buttons.append(("cancel_selected_deliveries", gettext("Cancel")))
        return buttons

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Whether the user may retry deliveries (``retry_delivery``)."""
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.retry_delivery")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Whether the user may cancel deliveries (``cancel_delivery``)."""
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.cancel_delivery")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Delivery], search_term: str
    ) -> tuple[QuerySet[Delivery], bool]:
        return search_exactly(queryset, search_term, uuids=("pk", "event_id"), text="task_id")

    @admin.display(description=_("delivery"), ordering="id")
    def short_id(self, obj: Delivery) -> SafeString:
        return format_html('<span title="{}">{}</span>', obj.pk, short_uuid(obj.pk))

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj: Delivery) -> SafeString:
        return state_badge(obj.state)

    @admin.display(description=_("receiver"))
    def receiver_summary(self, obj: Delivery) -> SafeString:
        """The receiver, and under it its dispatcher and, for an ordered delivery, its line."""
        details = [obj.dispatcher]
        if obj.ordering_key:
            key = format_html(
                '<span title="{}">{}</span>',
                obj.ordering_key,
                breakable_name(Truncator(obj.ordering_key).chars(24)),
            )
            if obj.ordering_seq is not None:
                key = format_html("{} #{}", key, obj.ordering_seq)
            details.append(key)
        return format_html(
            '{}<br><span class="dde-muted">{}</span>',
            breakable_name(obj.receiver),
            format_html_join(" · ", "{}", ((detail,) for detail in details)),
        )

    @admin.display(description=_("state"), ordering="state")
    def state_summary(self, obj: Delivery) -> SafeString:
        attempts = ngettext("%(count)s attempt", "%(count)s attempts", obj.attempts) % {
            "count": obj.attempts
        }
        return format_html(
            '{}<br><span class="dde-muted">{}</span>', state_badge(obj.state), attempts
        )

    @admin.display(description=_("when"))
    def time_summary(self, obj: Delivery) -> SafeString:
        """The time that matters in its state: the next attempt of a failed delivery, when a
        scheduled one is due, the delivery of a delivered one, else its last attempt or its
        creation. A waiting delivery has no next attempt of its own: it runs once the one ahead
        of it settles."""
        if obj.state == DeliveryState.FAILED and obj.next_attempt_at is not None:
            label, value = gettext("next attempt"), obj.next_attempt_at
        elif obj.state == DeliveryState.SCHEDULED and obj.next_attempt_at is not None:
            label, value = gettext("due"), obj.next_attempt_at
        elif obj.state == DeliveryState.DELIVERED and obj.delivered_at is not None:
            label, value = gettext("delivered"), obj.delivered_at
        elif obj.last_attempt_at is not None:
            label, value = gettext("last attempt"), obj.last_attempt_at
        else:
            label, value = gettext("created"), obj.created_at
        # The date and the time each stay whole; the column may wrap between them.
        date, _space, time = to_the_second(value).partition(" ")
        return format_html(
            '<span class="dde-muted">{}</span><br><span class="dde-nowrap">{}</span> '
            '<span class="dde-nowrap">{}</span>',
            label,
            date,
            time,
        )

    @admin.display(description=_("place in its line"))
    def line_place(self, obj: Delivery) -> SafeString | str:
        if not obj.ordering_key:
            if obj.ordering_seq is None:
                return "-"
            if obj.state == DeliveryState.CANCELLED:
                return format_html(
                    gettext(
                        "Taken out of the line of ordering key {} (cancelled): the deliveries "
                        "behind it went on without it."
                    ),
                    obj.event.ordering_key,
                )
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
    def last_error_short(self, obj: Delivery) -> SafeString | str:
        return error_preview(obj.last_error)

    @admin.display(description=_("event"))
    def event_link(self, obj: Delivery) -> SafeString:
        url = reverse(
            "admin:django_domain_events_outboxevent_change",
            args=(obj.event_id,),
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, breakable_name(obj.event.event_type))

    @admin.display(description=_("task"))
    def task_link(self, obj: Delivery) -> SafeString | str:
        url = task_result_url(obj.task_id)
        if url is None:
            return obj.task_id or "-"
        return format_html('<a href="{}">{}</a>', url, obj.task_id)

    @admin.display(description=_("event and task"))
    def event_and_task(self, obj: Delivery) -> SafeString:
        """The event's type, linked to it, and under it the task id's last 8 characters (all
        of it on hover), linked to its result when there is one."""
        if not obj.task_id:
            return self.event_link(obj)
        url = task_result_url(obj.task_id)
        short = obj.task_id[-8:]
        if url is None:
            task = format_html('<span title="{}">{}</span>', obj.task_id, short)
        else:
            task = format_html('<a href="{}" title="{}">{}</a>', url, obj.task_id, short)
        return format_html(
            '{}<br><span class="dde-muted">{} {}</span>', self.event_link(obj), _("task"), task
        )

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

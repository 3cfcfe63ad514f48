"""Consumed messages in the admin: the inbox, read-only, beside the outbox, with retry."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_domain_events.admin.base import MEDIA_CSS, ReadOnlyAdmin, search_exactly
from django_domain_events.admin.formatting import breakable_name, to_the_second
from django_domain_events.admin.highlighting import highlight_json
from django_domain_events.admin.pagination import EstimatedCountPaginator
from django_domain_events.integration.inbox import RETRYABLE_OUTCOMES, InboxMessage
from django_domain_events.integration.retrying import retry_inbox_messages
from django_domain_events.models import OutboxEvent


@admin.action(description=_("Retry selected consumed messages"), permissions=["retry"])
def retry_selected_messages(
    modeladmin: InboxMessageAdmin, request: HttpRequest, queryset: QuerySet[InboxMessage]
) -> None:
    """Consume the selected failed, dead, unknown-type or malformed messages again from their
    kept copy; processed ones are left alone."""
    rows = queryset.filter(outcome__in=RETRYABLE_OUTCOMES).order_by("received_at")
    totals = retry_inbox_messages(rows, using=queryset.db)
    level = messages.WARNING if totals.still_failing else messages.SUCCESS
    modeladmin.message_user(request, f"Retried consumed messages: {totals}.", level)


@admin.register(InboxMessage)
class InboxMessageAdmin(ReadOnlyAdmin):
    """Consumed messages: read-only, one row per message and receiver."""

    list_display = (
        "received_to_the_second",
        "source",
        "event_type_name",
        "receiver",
        "outcome",
        "attempts",
    )
    # Only what an index serves: the outcome's choices are fixed (no SELECT DISTINCT), and
    # searches are exact on indexed columns; a free filter by type or source, or a date bar,
    # would read the whole table.
    list_filter = ("outcome",)
    search_fields = ("=message_id", "=event_id")
    search_help_text = _("A message id or the event id it carries, exactly.")
    sortable_by = ("received_at",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    actions = (retry_selected_messages,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "message_id",
                    "event_link",
                    "source",
                    "event_type",
                    "version",
                    "receiver",
                    "outcome",
                    "attempts",
                    "received_at",
                    "processed_at",
                    "correlation_id",
                )
            },
        ),
        (_("Failure"), {"fields": ("last_error", "traceback")}),
        (_("Kept message"), {"fields": ("headers_highlighted", "body_highlighted")}),
    )
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    class Media:
        css = MEDIA_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboxMessage]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and (match.url_name or "").endswith("_changelist"):
            # The list shows no kept message: a page of them could weigh megabytes.
            queryset = queryset.defer("raw_headers", "raw_body", "traceback")
        return queryset

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Whether the user may retry consumed messages (``retry_inboxmessage``)."""
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.retry_inboxmessage")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[InboxMessage], search_term: str
    ) -> tuple[QuerySet[InboxMessage], bool]:
        return search_exactly(queryset, search_term, uuids=("event_id",), text="message_id")

    @admin.display(description=_("received at"), ordering="received_at")
    def received_to_the_second(self, obj: InboxMessage) -> str:
        return to_the_second(obj.received_at)

    @admin.display(description=_("event type"))
    def event_type_name(self, obj: InboxMessage) -> SafeString:
        return breakable_name(obj.event_type)

    @admin.display(description=_("event"))
    def event_link(self, obj: InboxMessage) -> SafeString | str:
        """The outbox event it carries when that event is in this database (a message this
        project sent itself), else the carried id."""
        if obj.event_id is None:
            return "-"
        if not OutboxEvent.objects.using(obj._state.db).filter(pk=obj.event_id).exists():
            return str(obj.event_id)
        opts = OutboxEvent._meta
        url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=(obj.event_id,),
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, obj.event_id)

    @admin.display(description=_("headers"))
    def headers_highlighted(self, obj: InboxMessage) -> SafeString | str:
        return "-" if obj.raw_headers is None else highlight_json(obj.raw_headers)

    @admin.display(description=_("body"))
    def body_highlighted(self, obj: InboxMessage) -> SafeString | str:
        if obj.raw_body is None:
            return "-"
        body = bytes(obj.raw_body)
        try:
            return highlight_json(json.loads(body))
        except ValueError:
            return format_html('<pre class="dde-json">{}</pre>', body.decode(errors="replace"))

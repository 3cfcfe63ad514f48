"""The outbox in the Django admin: a read-only audit trail of events and their deliveries."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from .models import Delivery, OutboxEvent

# django-stubs makes the admin classes generic; at run time Django's are not subscriptable.
if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
    DeliveryInlineBase = admin.TabularInline[Delivery, OutboxEvent]
else:
    ModelAdmin = admin.ModelAdmin
    DeliveryInlineBase = admin.TabularInline


class ReadOnlyAdmin(ModelAdmin):
    """Shows rows, never edits them: the outbox is written only by publishing and delivery."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _pretty_json(value: Any) -> SafeString:
    # format_html escapes the JSON text, so a payload holding markup shows as text.
    return format_html(
        '<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True),
    )


class DeliveryInline(DeliveryInlineBase):
    model = Delivery
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("receiver", "dispatcher", "state", "attempts", "next_attempt_at", "last_error")
    readonly_fields = fields
    ordering = ("receiver",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "version", "occurred_at", "correlation_id")
    list_filter = ("event_type",)
    search_fields = ("=id", "=correlation_id", "=causation_id")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    readonly_fields = (
        "id",
        "event_type",
        "version",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "ordering_key",
        "payload_pretty",
    )
    fields = readonly_fields
    inlines = (DeliveryInline,)

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: OutboxEvent) -> SafeString:
        return _pretty_json(obj.payload)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "receiver",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "event_link",
    )
    list_filter = ("state", "dispatcher", "receiver")
    search_fields = ("=id", "=event__id", "=task_id")
    list_select_related = ("event",)
    show_full_result_count = False
    readonly_fields = (
        "id",
        "event_link",
        "receiver",
        "dispatcher",
        "queue",
        "state",
        "attempts",
        "created_at",
        "next_attempt_at",
        "dispatched_at",
        "last_attempt_at",
        "delivered_at",
        "task_id",
        "last_error",
        "traceback_pre",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).select_related("event")

    @admin.display(description=_("event"))
    def event_link(self, obj: Delivery) -> SafeString:
        url = reverse("admin:django_domain_events_outboxevent_change", args=(obj.event_id,))
        return format_html('<a href="{}">{}</a>', url, obj.event.event_type)

    @admin.display(description=_("traceback"))
    def traceback_pre(self, obj: Delivery) -> SafeString:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.traceback)

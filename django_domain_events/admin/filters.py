"""The list filters of the outbox pages, each cheap on tables of millions of rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_domain_events.admin.distinct import DISTINCT_VALUES_LIMIT, distinct_values
from django_domain_events.admin.formatting import breakable_name
from django_domain_events.admin.lines import holding_up
from django_domain_events.conf import settings
from django_domain_events.declaration.registry import registry
from django_domain_events.models import NEEDS_ATTENTION, Delivery, DeliveryState, OutboxEvent


class EventTypeFilter(admin.SimpleListFilter):
    """Events of one type; the types come from an index, not from reading every event."""

    title = _("event type")
    parameter_name = "event_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        using = model_admin.get_queryset(request).db
        values = distinct_values(OutboxEvent, "event_type", using=using)
        return [(value, breakable_name(value)) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(event_type=value) if value else queryset


class EventDeliveryStateFilter(admin.SimpleListFilter):
    """Events with at least one delivery in a state: those with a dead letter, say."""

    title = _("delivery state")
    parameter_name = "delivery_state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(DeliveryState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value not in DeliveryState.values:
            return queryset
        return queryset.filter(
            Exists(Delivery.objects.filter(event_id=OuterRef("pk"), state=value))
        )


class ReceiverFilter(admin.SimpleListFilter):
    """Deliveries to one receiver. The names are the registered receivers' and those of any
    other receiver with deliveries that need attention (a renamed or removed receiver's dead
    letters are the ones to find), read from the small partial index that holds those."""

    title = _("receiver")
    parameter_name = "receiver"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        using = model_admin.get_queryset(request).db
        stored = (
            Delivery.objects.using(using)
            .filter(NEEDS_ATTENTION)
            .order_by()
            .values_list("receiver", flat=True)
            .distinct()[:DISTINCT_VALUES_LIMIT]
        )
        names = {receiver.name for receiver in registry.all()} | set(stored)
        values = sorted(names)[:DISTINCT_VALUES_LIMIT]
        return [(value, breakable_name(value)) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(receiver=value) if value else queryset


class DispatcherFilter(admin.SimpleListFilter):
    """Deliveries of one dispatcher. The choices are the dispatchers the registered receivers
    and the settings use, read without a query (the column has no index to read them from)."""

    title = _("dispatcher")
    parameter_name = "dispatcher"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = {settings.DISPATCHER}
        names.update(r.dispatcher for r in registry.all() if r.dispatcher)
        current = self.value()
        if current:
            names.add(current)
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(dispatcher=value) if value else queryset


class HoldingUpFilter(admin.SimpleListFilter):
    """Dead deliveries that hold up their ordering line: the ones to retry or skip. Read
    through the state index; dead deliveries are few."""

    title = _("ordering line")
    parameter_name = "line"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("blocking", _("dead, holding up its line"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return holding_up(queryset) if self.value() == "blocking" else queryset


class OrderingKeyFilter(admin.SimpleListFilter):
    """Deliveries of one ordering key, reached from a delivery's page or the dashboard. It
    offers no choices (a key per order, say, is too many to list) and shows only once set."""

    title = _("ordering key")
    parameter_name = "ordering_key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        current = self.value()
        return [(current, current)] if current else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(ordering_key=value) if value else queryset

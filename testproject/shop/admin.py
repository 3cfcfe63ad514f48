"""Admin for the shop's models. The outbox (events and deliveries) has its own admin, which
django_domain_events registers."""

from __future__ import annotations

from django.contrib import admin

from .models import CrmMerge, CrmOrderStatus, CrmSync, EmailLog, Order, Payment

admin.site.site_header = "Demo shop: django_domain_events"
admin.site.site_title = "Demo shop"


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "customer", "total", "status", "created")
    list_filter = ("status",)
    search_fields = ("customer",)


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "amount", "provider_reference", "created")
    search_fields = ("provider_reference",)


@admin.register(EmailLog)
class EmailLogAdmin(admin.ModelAdmin):
    list_display = ("id", "to", "subject", "sent")
    search_fields = ("to", "subject")


@admin.register(CrmSync)
class CrmSyncAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "attempt", "event_id", "correlation_id", "synced")
    search_fields = ("event_id", "correlation_id")


@admin.register(CrmOrderStatus)
class CrmOrderStatusAdmin(admin.ModelAdmin):
    list_display = ("order", "status", "event_id", "updated")
    list_filter = ("status",)


@admin.register(CrmMerge)
class CrmMergeAdmin(admin.ModelAdmin):
    list_display = ("contact", "finished")
    list_editable = ("finished",)

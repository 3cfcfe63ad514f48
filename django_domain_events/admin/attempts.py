"""A delivery's attempt history on its admin page: its failed attempts, newest first,
read-only, each traceback folded away until clicked."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_domain_events.admin.base import TabularInline
from django_domain_events.admin.formatting import breakable_name, error_preview, to_the_second
from django_domain_events.models import AttemptOutcome, DeliveryAttempt


class DeliveryAttemptInline(TabularInline):
    """The failed attempts of a delivery, shown to whoever may view the delivery."""

    model = DeliveryAttempt
    extra = 0
    can_delete = False
    # Few columns that stack what belongs together, so the table fits at 1280 px.
    fields = ("attempt_summary", "started", "failure", "ran_by")
    readonly_fields = fields
    ordering = ("-id",)
    classes = ("dde-attempts",)
    verbose_name = _("failed attempt")
    verbose_name_plural = _("failed attempts (newest first)")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The history is part of the delivery: seeing one is seeing the other.
        opts = self.parent_model._meta
        return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("attempt"))
    def attempt_summary(self, obj: DeliveryAttempt) -> SafeString:
        """Its number, and under it how it ended."""
        kind = "dde-state-dead" if obj.outcome == AttemptOutcome.TIMED_OUT else "dde-state-failed"
        return format_html(
            '#{}<br><span class="dde-badge {}">{}</span>',
            obj.attempt,
            kind,
            obj.get_outcome_display(),
        )

    @admin.display(description=_("started"))
    def started(self, obj: DeliveryAttempt) -> SafeString:
        """When it started, and under it how long it ran."""
        date, _space, time = to_the_second(obj.started_at).partition(" ")
        return format_html(
            '<span class="dde-nowrap">{}</span> <span class="dde-nowrap">{}</span><br>'
            '<span class="dde-muted">{}</span>',
            date,
            time,
            gettext("%(seconds).3f s") % {"seconds": obj.duration.total_seconds()},
        )

    @admin.display(description=_("error"))
    def failure(self, obj: DeliveryAttempt) -> SafeString:
        """The error, and its traceback folded away."""
        if not obj.traceback:
            return format_html("{}", error_preview(obj.error))
        return format_html(
            '{}<details class="dde-traceback"><summary>{}</summary><pre>{}</pre></details>',
            error_preview(obj.error),
            gettext("Show traceback"),
            obj.traceback,
        )

    @admin.display(description=_("ran by"))
    def ran_by(self, obj: DeliveryAttempt) -> SafeString:
        """The host and process, and under it the queue task, if any."""
        if not obj.task_id:
            return breakable_name(obj.worker or "-")
        return format_html(
            '{}<br><span class="dde-muted">{} {}</span>',
            breakable_name(obj.worker or "-"),
            gettext("task"),
            breakable_name(obj.task_id),
        )
